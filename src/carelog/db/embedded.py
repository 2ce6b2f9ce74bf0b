"""The embedded PostgreSQL that makes carelog work on a machine with only Python.

``pgserver`` ships PostgreSQL 16 binaries in a wheel. We keep its data directory under
``CARELOG_DATA_DIR`` so a second ``carelog up`` finds yesterday's data, and we talk to it over a
Unix socket, so nothing listens on the network.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from carelog.core.errors import DatabaseUnavailableError


def start_embedded(data_dir: Path) -> tuple[Any, str]:
    """Start (or attach to) the embedded server; return its handle and a superuser URL.

    The handle must be kept alive: pgserver stops the server when the last handle of the last
    process using it is released.
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

        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        except Exception as exc:  # pgserver raises plain exceptions with pg_ctl output
            raise DatabaseUnavailableError(
                f"the embedded PostgreSQL did not start in {pgdata}: {exc}",
                hint="check the directory's permissions and free disk, or set CARELOG_DATABASE_URL",
            ) from exc
    return server, str(server.get_uri())
