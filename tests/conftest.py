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
    _CONFIG["config"] = config


#: The attack families the suite reports; a test names its attacks "family: what".
ATTACK_FAMILIES = (
    "tokens",
    "cross-tenant",
    "viewer",
    "trail integrity",
    "input abuse",
    "webhook",
    "database roles",
    "rate limits",
)
#: Older, unprefixed names of the RLS suite (per-table probes are cross-tenant).
_LEGACY_FAMILIES = {"writer": "database roles", "escalation": "database roles"}


def attack_family(name: str) -> str:
    head = name.split(":", 1)[0].strip()
    if head in ATTACK_FAMILIES:
        return head
    return _LEGACY_FAMILIES.get(head, "cross-tenant")


@pytest.fixture
def attack_count(request: pytest.FixtureRequest) -> Callable[[str, int], None]:
    """Tests of the attack suite report how many attacks they ran (each refused, or the test
    fails); the summary adds them up per family."""
    node = request.node

    def add(name: str, n: int) -> None:
        # Carried on the test's report, so counts survive pytest-xdist workers.
        node.user_properties.append(("carelog_attack", [str(name), int(n)]))

    return add


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    config = _CONFIG.get("config")
    if config is None:
        return
    store: dict[str, int] = config._carelog_attacks  # type: ignore[attr-defined]
    for key, value in report.user_properties:
        if key == "carelog_attack":
            name, n = value  # type: ignore[misc]
            store[name] = store.get(name, 0) + int(n)


_CONFIG: dict[str, pytest.Config] = {}


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    store: dict[str, int] = getattr(config, "_carelog_attacks", {})
    if not store:
        return
    families: dict[str, int] = dict.fromkeys(ATTACK_FAMILIES, 0)
    for name, n in store.items():
        families[attack_family(name)] += n
    terminalreporter.write_line(
        f"attack suite: {sum(store.values())} attempts across {len(store)} targets, "
        "all refused or saw nothing"
    )
    for family, n in families.items():
        terminalreporter.write_line(f"  {family:<16} {n:>6} attempts, all refused")
