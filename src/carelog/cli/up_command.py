"""`carelog up`: the main job. Database (embedded by default), migrations, then the API."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from carelog.cli.context import open_database
from carelog.db import migrate
from carelog.runtime import Runtime
from carelog.web.app import create_app

out = Console(soft_wrap=True)


def up(
    demo: Annotated[
        bool,
        typer.Option(help="Seed two demo organizations first and print dev tokens for them."),
    ] = False,
    host: Annotated[str | None, typer.Option(help="Listen address (CARELOG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (CARELOG_PORT).")] = None,
) -> None:
    """Start the database, migrate it, and serve the API until Ctrl-C."""
    with open_database() as db:
        settings = db.settings
        where = (
            "embedded PostgreSQL in " + str(settings.data_dir) if settings.embedded else "server"
        )
        out.print(f"database: {where}")
        migrate.upgrade(db)
        out.print(f"schema at revision {migrate.current(db)}")
        bind_host = host or settings.host
        bind_port = port or settings.port
        if demo:
            from carelog.cli.demo import access_lines, dev_webhook_secret, run_seed, stripe_lines

            summary = run_seed(db)
            out.print(f"demo data: {summary.describe()}", highlight=False)
            lines = access_lines(summary, settings)
            webhook_secret, from_env = dev_webhook_secret(settings)
            lines += stripe_lines(webhook_secret, from_env, f"http://{bind_host}:{bind_port}")
            for line in lines:
                out.print(line, highlight=False, markup=False)
            # The environment's STRIPE_WEBHOOK_SECRET, when set, is the one used and printed.
            settings = settings.with_changes(stripe_webhook_secret=webhook_secret)
        out.print(
            f"serving on http://{bind_host}:{bind_port} "
            "(liveness: /health, readiness: /ready, docs: /docs)"
        )
        uvicorn.run(
            create_app(Runtime(settings, db), sealer=True),
            host=bind_host,
            port=bind_port,
            log_level="info",
        )
