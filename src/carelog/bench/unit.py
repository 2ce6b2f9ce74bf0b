"""``carelog bench unit``: what one unit of work costs the process, by the layer that runs it.

Every audited request runs at least one unit: BEGIN, the tenant context, a statement, COMMIT.
The same unit is run, one after another on one connection (no concurrency, so nothing but the
unit's own code is measured), as the app role with the same RLS context, through:

- (a) psycopg directly (``AsyncConnection.transaction()``): the floor on this stack;
- (b) SQLAlchemy Core: ``AsyncEngine.connect()`` + ``begin()``, the statement as ``sa.text``;
- (c) carelog's unit: ``Scopes.org_scope`` (a :class:`carelog.db.unit.Unit` on a connection
  of SQLAlchemy's pool, the context set by its first statement, the statement through
  ``unit.execute``), as services run them. Before the units ran on psycopg it was an ORM
  ``AsyncSession``: 2.4-3.0x (a) on one machine, where (b) was 2.1-2.5x.

Each run reports CPU microseconds of this process per unit (``time.process_time``) and wall
microseconds, and its ratio to (a). The statement reads one RLS-protected row (the caller's
organization) so the policies run as on the request path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from carelog.bench import BenchDatabase, bench_database, run_async
from carelog.db.session import Scopes

_SET_CONTEXT = "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)"
_SELECT = "SELECT id, name FROM organizations WHERE id = %s"
_SET_CONTEXT_TEXT = sa.text(
    "SELECT set_config('app.user_id', :user_id, true), set_config('app.org_id', :org_id, true)"
)
_SELECT_TEXT = sa.text("SELECT id, name FROM organizations WHERE id = :org_id")
#: Runs per round: (a), (b), (c).
LAYERS = 3


@dataclass(frozen=True)
class UnitRun:
    label: str
    units: int
    cpu_seconds: float
    wall_seconds: float

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.units * 1e6

    @property
    def wall_us(self) -> float:
        return self.wall_seconds / self.units * 1e6


@dataclass(frozen=True)
class UnitBenchReport:
    units: int
    runs: list[UnitRun]

    def ratio(self, run: UnitRun) -> float:
        """CPU per unit against the floor (a) of the same round."""
        at = self.runs.index(run)
        floor = self.runs[at - at % LAYERS].cpu_us
        return run.cpu_us / floor if floor else 0.0


async def _timed(label: str, units: int, one: Callable[[], Awaitable[Any]]) -> UnitRun:
    for _ in range(max(50, units // 20)):  # warm up: pools, prepared statements, caches
        await one()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(units):
        await one()
    return UnitRun(label, units, time.process_time() - cpu, time.perf_counter() - wall)


async def _measure(bench: BenchDatabase, units: int, rounds: int) -> list[UnitRun]:
    member = bench.members[0]
    user, org, org_id = member.user_id, str(member.org_id), member.org_id
    raw = await psycopg.AsyncConnection.connect(bench.conninfo("app"))
    core = create_async_engine(bench.database.url_for("app"), pool_size=1, max_overflow=0)
    scopes = Scopes(bench.database)

    async def floor() -> None:
        async with raw.transaction():
            await raw.execute(_SET_CONTEXT, (user, org))
            await (await raw.execute(_SELECT, (org_id,))).fetchone()

    async def with_core() -> None:
        async with core.connect() as conn, conn.begin():
            await conn.execute(_SET_CONTEXT_TEXT, {"user_id": user, "org_id": org})
            (await conn.execute(_SELECT_TEXT, {"org_id": org_id})).first()

    async def with_carelog() -> None:
        async with scopes.org_scope(user, org) as session:
            (await session.execute(_SELECT_TEXT, {"org_id": org_id})).first()

    runs: list[UnitRun] = []
    try:
        for _ in range(rounds):
            runs.append(await _timed("(a) psycopg, app role", units, floor))
            runs.append(await _timed("(b) SQLAlchemy Core connection", units, with_core))
            runs.append(await _timed("(c) carelog org_scope (Unit)", units, with_carelog))
    finally:
        await raw.close()
        await core.dispose()
        await bench.database.dispose()
    return runs


def run_unit_bench(
    *,
    units: int = 5_000,
    rounds: int = 2,
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> UnitBenchReport:
    with bench_database(database_url, orgs=1, users_per_org=1) as bench:
        echo(f"running {units:,} units per layer, {rounds} round(s), one connection each")
        runs = run_async(_measure(bench, units, rounds))
    return UnitBenchReport(units, runs)
