"""The app factory of a worker process: ``uvicorn --factory carelog.web.worker:app``.

``carelog up --workers N`` starts its workers with it, and it is the entry point for a process
manager in production (see docs/scaling.md). Each worker opens the configured database by URL
(``CARELOG_DATABASE_URL``; it never starts an embedded server of its own), has its own audit
writer and spool file, and competes for the leader lock that elects the one sealer.
"""

from __future__ import annotations

from fastapi import FastAPI

from carelog.core.settings import Settings
from carelog.db.engine import Database
from carelog.runtime import Runtime
from carelog.web.app import create_app


def app() -> FastAPI:
    settings = Settings.from_env()
    if settings.embedded:
        from carelog.core.errors import ConfigurationError

        raise ConfigurationError(
            "a worker needs CARELOG_DATABASE_URL (workers do not start an embedded server)",
            field="CARELOG_DATABASE_URL",
            hint="run `carelog up --workers N`, or migrate with `carelog db upgrade` and set it",
        )
    return create_app(Runtime(settings, Database.open(settings)), sealer=True, freeze_heap=True)
