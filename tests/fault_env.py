"""A PostgreSQL of the fault tests' own: they stop, restart and lock it, so it is ALWAYS an
embedded server in a temporary directory, never the shared one (even when
CARELOG_TEST_DATABASE_URL is set). Import the fixtures into a test module to use them."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from carelog.audit.writer import AuditWriter
from carelog.db.engine import Database
from dbtools import TestServer
from world import World, build_world


# --------------------------------------------------------------------------- our own server
@dataclass
class OwnServer:
    server: TestServer
    handle: Any
    socket_dir: str
    template: str

    def pg_ctl(self, *args: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver import _commands

        _commands.pg_ctl(  # type: ignore[attr-defined]
            list(args), pgdata=self.handle.pgdata, user=self.handle.system_user, timeout=60
        )

    def stop(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self.pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.handle.log),
            "start",
        )

    def running(self) -> bool:
        try:
            with psycopg.connect(
                self.server.admin_url.set(drivername="postgresql").render_as_string(
                    hide_password=False
                ),
                connect_timeout=2,
            ):
                return True
        except psycopg.OperationalError:
            return False


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnServer]:
    tmpdir = tempfile.mkdtemp(prefix="carelog-fault-pg-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        handle = pgserver.get_server(tmpdir, cleanup_mode="stop")
    url = make_url(handle.get_uri()).set(drivername="postgresql+psycopg")
    server = TestServer(url, kind="embedded", handle=handle, tmpdir=tmpdir)
    socket_dir = str(handle.get_postmaster_info().socket_dir)
    own = OwnServer(server, handle, socket_dir, server.migrated_template())
    yield own
    if not own.running():
        own.start()
    server.stop()


@dataclass
class Env:
    own: OwnServer
    db: Database
    world: World
    tmp: Path

    def admin_conninfo(self) -> str:
        return self.db.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)

    def stored(self, ids: set[str]) -> tuple[int, int]:
        """(how many of ``ids`` are stored, how many ids appear more than once in the table)."""
        with psycopg.connect(self.admin_conninfo()) as conn:
            found = conn.execute(
                "SELECT count(DISTINCT id) FROM audit_logs WHERE id = ANY(%s::uuid[])",
                (list(ids),),
            ).fetchone()
            dups = conn.execute(
                "SELECT count(*) FROM (SELECT id FROM audit_logs GROUP BY id HAVING count(*) > 1) d"
            ).fetchone()
        assert found is not None and dups is not None
        return int(found[0]), int(dups[0])


@contextlib.contextmanager
def _own_database(own_pg: OwnServer) -> Iterator[Database]:
    if not own_pg.running():
        own_pg.start()
    name = own_pg.server.create_database(template=own_pg.template)
    db = own_pg.server.database(name)
    yield db
    db.close()
    if not own_pg.running():
        own_pg.start()
    own_pg.server.drop_database(name)


@pytest.fixture
def env(own_pg: OwnServer, tmp_path: Path) -> Iterator[Env]:
    with _own_database(own_pg) as db:
        yield Env(own_pg, db, build_world(db.sync_engine("admin")), tmp_path)


@pytest.fixture
def own_db(own_pg: OwnServer) -> Iterator[Database]:
    """A fresh migrated database on our own server, without the test world (for harnesses
    that build it themselves)."""
    with _own_database(own_pg) as db:
        yield db


async def wait_replayed(writer: AuditWriter, limit: float = 20.0) -> None:
    """Until the circuit is closed and no spool file is left (the spool has been replayed)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if (
            not writer.stats.circuit_open
            and not writer.spool.pending()
            and writer.spool.current is None
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the writer did not replay its spool: {writer.stats.as_dict()}")


def report(capsys: pytest.CaptureFixture[str], title: str, **counts: object) -> None:
    with capsys.disabled():
        print(f"\n[fault] {title}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
