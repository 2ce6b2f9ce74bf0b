"""PostgreSQL unreachable: 503 with the JSON error body and ``Retry-After``, one log line per
change of state.

Without this mapping a connection failure surfaced as Starlette's bare ``500 Internal Server
Error`` (text/plain, a traceback per request, the keep-alive connection dropped). Now the
request gets an answer a client can act on, and the log says once that the database went away
(with the driver's reason) and once that it is back: the pool's ``connect`` event marks the
first successful new connection after an outage.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from carelog.core.errors import DatabaseUnavailableError
from carelog.db.engine import Database

log = logging.getLogger("carelog.web")

RETRY_AFTER_SECONDS = "5"

# What a lost, refused or exhausted connection raises, through SQLAlchemy or psycopg directly.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # the pool found no connection in time
    psycopg.OperationalError,
    psycopg.InterfaceError,
    DatabaseUnavailableError,
    ConnectionError,
)


def is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def reason_of(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__


class DatabaseState:
    """Up or down, as seen by requests; logs only transitions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down = False
        self.reason: str | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self.down:
                return
            self.down, self.reason = True, reason_of(exc)
        log.error("database unreachable, answering 503: %s", self.reason)

    def connected(self) -> None:
        with self._lock:
            if not self.down:
                return
            self.down = False
            failures, self.failures = self.failures, 0
        log.warning("database reachable again (%d requests answered 503 meanwhile)", failures)

    def watch(self, database: Database) -> None:
        """Mark the database up again on the first new pooled connection of the request roles."""
        for kind in ("app", "system"):
            engine = database.async_engine(kind).sync_engine

            def on_connect(*_: Any) -> None:
                self.connected()

            sa.event.listen(engine, "connect", on_connect)
