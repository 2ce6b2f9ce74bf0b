"""The embedded PostgreSQL that makes carelog work on a machine with only Python.

``pgserver`` ships PostgreSQL 16 binaries in a wheel. We keep its data directory under
``CARELOG_DATA_DIR`` so a second ``carelog up`` finds yesterday's data, and we talk to it over a
Unix socket, so nothing listens on the network.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from carelog.core.errors import DatabaseUnavailableError

log = logging.getLogger("carelog.db.embedded")
_HANDLES = ".handle_pids.json"  # pgserver's list of the processes holding a handle


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of dead processes from pgserver's handle list; returns those dropped."""
    path = pgdata / _HANDLES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        dead = [p for p in pids if not _alive(p)]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
    if dead:
        log.warning("embedded PostgreSQL: forgot handles of dead processes %s", dead)
    return dead


def stop_embedded(server: Any) -> None:
    """Release our handle; the server stops if no live process holds another one."""
    forget_dead_handles(Path(server.pgdata))
    server.cleanup()


def start_embedded(data_dir: Path) -> tuple[Any, str]:
    """Start (or attach to) the embedded server; return its handle and a superuser URL.

    The handle must be kept alive: pgserver stops the server when the last handle of the last
    process using it is released (:func:`stop_embedded`). Handles of processes that no longer
    exist (a ``carelog up`` killed with ``kill -9``) are forgotten first, or the server would
    never be stopped again.
    """
    pgdata = data_dir / "pgdata"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailableError(
            f"cannot create the embedded database directory {pgdata.parent}: {exc.strerror}",
            hint="set CARELOG_DATA_DIR to a writable directory",
        ) from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        forget_dead_handles(pgdata)
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        except Exception as exc:  # pgserver raises plain exceptions with pg_ctl output
            raise DatabaseUnavailableError(
                f"the embedded PostgreSQL did not start in {pgdata}: {exc}",
                hint="check the directory's permissions and free disk, or set CARELOG_DATABASE_URL",
            ) from exc
    return server, str(server.get_uri())
