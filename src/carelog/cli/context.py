"""Opening the configured database from a command, and always closing it again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from carelog.core.settings import Settings
from carelog.db.engine import Database


@contextmanager
def open_database() -> Iterator[Database]:
    db = Database.open(Settings.from_env())
    try:
        yield db
    finally:
        db.close()
