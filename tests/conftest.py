"""Shared fixtures: one real PostgreSQL per session and one fresh migrated database per need."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

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


def pytest_configure(config: pytest.Config) -> None:
    config._carelog_attacks = {}  # type: ignore[attr-defined]


@pytest.fixture
def attack_count(request: pytest.FixtureRequest) -> Callable[[str, int], None]:
    """Tests of the attack suite report how many attacks they ran; the summary adds them up."""
    store: dict[str, int] = request.config._carelog_attacks  # type: ignore[attr-defined]

    def add(name: str, n: int) -> None:
        store[name] = store.get(name, 0) + n

    return add


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    store: dict[str, int] = getattr(config, "_carelog_attacks", {})
    if store:
        terminalreporter.write_line(
            f"RLS attack suite: {sum(store.values())} attacks across {len(store)} targets, "
            "all refused or saw nothing"
        )
