"""Shared fixtures: one real PostgreSQL per session and one fresh migrated database per need."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from carelog.db.engine import Database
from carelog.db.session import Scopes
from dbtools import TestServer


@pytest.fixture(scope="session")
def pg() -> Iterator[TestServer]:
    server = TestServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def template_db(pg: TestServer) -> str:
    """A database migrated to head once per session; copies of it are cheap."""
    return pg.migrated_template()


@pytest.fixture
def fresh_db(pg: TestServer, template_db: str) -> Iterator[Database]:
    """A pristine migrated database of its own (a copy of the template)."""
    name = pg.create_database(template=template_db)
    db = pg.database(name)
    yield db
    db.close()
    pg.drop_database(name)


@pytest.fixture
async def scopes(fresh_db: Database) -> AsyncIterator[Scopes]:
    s = Scopes(fresh_db)
    yield s
    await fresh_db.dispose()
