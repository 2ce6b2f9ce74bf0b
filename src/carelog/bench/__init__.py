"""Benchmarks of the audit core, run with ``carelog bench audit|query``.

Every figure is printed as a ratio against baselines measured in the same process and the same
run, on the same PostgreSQL, so a slow or busy machine shifts all numbers together and the
ratios stay meaningful. Nothing here asserts timings: unit tests never do.

:func:`bench_database` gives a benchmark a migrated, seeded, throwaway database: by default on an
embedded PostgreSQL in a temporary directory, or, given an admin URL, as a temporary database
with its own role prefix on an existing server (dropped again at the end, with its roles).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from carelog.core.settings import Settings
from carelog.db import migrate
from carelog.db.engine import Database
from carelog.db.roles import drop_roles

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the event loop ``carelog up`` serves on: uvloop where it is installed
    (uvicorn picks it; carelog depends on it), else asyncio's own. A benchmark of code that
    runs in the service measures it on the service's loop; its in-process baselines share
    the loop. On asyncio's default loop psycopg's registering and unregistering of its socket
    with the selector for every wait was a fifth of a unit of work's CPU."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without it
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class Member:
    """A seeded person: an active member (``owner`` role) of one organization."""

    user_id: str
    org_id: uuid.UUID


@dataclass
class BenchDatabase:
    """A migrated, seeded database that exists only for one benchmark run."""

    database: Database
    workdir: Path
    members: list[Member] = field(default_factory=list)

    def conninfo(self, kind: str = "admin") -> str:
        """A libpq connection string for psycopg (``admin``, ``app``, ``system``, ``writer``)."""
        url = self.database.url_for(kind)  # type: ignore[arg-type]
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def orgs(self) -> list[uuid.UUID]:
        return list(dict.fromkeys(m.org_id for m in self.members))


def _admin_engine(url: URL) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def seed(conninfo: str, orgs: int, users_per_org: int) -> list[Member]:
    """Organizations with active owner members, written as the admin (bypassing RLS)."""
    members: list[Member] = []
    with psycopg.connect(conninfo) as conn:
        for o in range(orgs):
            org_id = uuid.uuid4()
            conn.execute(
                "INSERT INTO organizations (id, workos_org_id, slug, name, type) "
                "VALUES (%s, %s, %s, %s, 'clinic')",
                (org_id, f"org_bench_{o}", f"bench-{o}", f"Bench clinic {o}"),
            )
            for u in range(users_per_org):
                user = f"user_bench_{o}_{u}"
                conn.execute(
                    "INSERT INTO users (workos_user_id, email, role) VALUES (%s, %s, 'user')",
                    (user, f"{user}@example.test"),
                )
                conn.execute(
                    "INSERT INTO user_org_memberships (workos_user_id, org_id, role) "
                    "VALUES (%s, %s, 'owner')",
                    (user, org_id),
                )
                members.append(Member(user, org_id))
    return members


@contextmanager
def bench_database(
    database_url: str | None = None, *, orgs: int = 4, users_per_org: int = 8
) -> Iterator[BenchDatabase]:
    """A throwaway migrated database; everything it created is removed on exit."""
    prefix = "cb" + secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix="carelog-bench-"))
    handle: Any = None
    created = False
    server: URL | None = None
    try:
        if database_url is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pgserver

                (workdir / "pgdata").mkdir()
                handle = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")  # type: ignore[attr-defined]
            server = make_url(handle.get_uri())
        else:
            server = make_url(database_url)
        server = server.set(drivername="postgresql+psycopg")
        name = f"{prefix}_bench"
        engine = _admin_engine(server)
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        created = True
        settings = Settings.from_env(
            {
                "CARELOG_DATABASE_URL": server.set(database=name).render_as_string(
                    hide_password=False
                ),
                "CARELOG_ROLE_PREFIX": prefix,
                "CARELOG_ENV": "test",
                "CARELOG_DATA_DIR": str(workdir / "data"),
            }
        )
        database = Database.open(settings)
        migrate.upgrade(database)
        bench = BenchDatabase(database, workdir)
        bench.members = seed(bench.conninfo("admin"), orgs, users_per_org)
        try:
            yield bench
        finally:
            database.close()
    finally:
        if server is not None and created:
            engine = _admin_engine(server)
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{prefix}_bench" WITH (FORCE)')
                drop_roles(conn, Settings.from_env({"CARELOG_ROLE_PREFIX": prefix}).roles)
            engine.dispose()
        if handle is not None:
            handle.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0..1) of an already sorted list (nearest rank)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


__all__ = ["BenchDatabase", "Member", "bench_database", "percentile", "seed"]
