"""Fault injection for the group-commit writer: nothing acknowledged is lost or stored twice.

These tests stop, restart and lock PostgreSQL, so they ALWAYS run on an embedded server of
their own in a temporary directory, never on the shared one (even when
CARELOG_TEST_DATABASE_URL is set). Counts are printed so they show in the CI log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from carelog.audit import AuditUnavailableError, audit_context, configure_audit, log_audit_event
from carelog.audit.api import AuditService
from carelog.audit.events import Masker
from carelog.audit.setup import create_audit_service
from carelog.audit.spool import Spool
from carelog.audit.writer import AuditWriter
from carelog.db.engine import Database
from carelog.platform.audit_catalog import build_catalog
from dbtools import TestServer
from world import World, build_world

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CHILD = Path(__file__).with_name("fault_child.py")


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


@pytest.fixture
def env(own_pg: OwnServer, tmp_path: Path) -> Iterator[Env]:
    if not own_pg.running():
        own_pg.start()
    name = own_pg.server.create_database(template=own_pg.template)
    db = own_pg.server.database(name)
    world = build_world(db.sync_engine("admin"))
    yield Env(own_pg, db, world, tmp_path)
    db.close()
    if not own_pg.running():
        own_pg.start()
    own_pg.server.drop_database(name)


@pytest.fixture
async def service(env: Env) -> AsyncIterator[AuditService]:
    svc = create_audit_service(env.db, build_catalog(), spool_dir=env.tmp / "spool")
    configure_audit(svc)
    await svc.start()
    yield svc
    await svc.stop()
    configure_audit(None)
    await env.db.dispose()


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


# --------------------------------------------------------------------------- the tests
async def test_stop_postgres_during_a_steady_stream(
    env: Env, service: AuditService, capsys: pytest.CaptureFixture[str]
) -> None:
    """2,000 events/s for 6 s; PostgreSQL is stopped from 2 s to 4 s."""
    a = env.world.a
    rate, seconds, tick = 2000, 6.0, 0.01
    sent: list[str] = []
    acked: set[str] = set()
    failures: list[BaseException] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        try:
            event = await log_audit_event("PROFILE_VIEWED", "profile", f"steady-{i}")
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            failures.append(exc)
            return
        acked.add(str(event.id))

    async def chaos() -> None:
        await asyncio.sleep(2.0)
        await asyncio.to_thread(env.own.stop)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(env.own.start)

    chaos_task = asyncio.create_task(chaos())
    start = time.monotonic()
    with audit_context(actor=a.owner, org_id=a.org_id):
        i = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            while i < due:
                task = asyncio.create_task(one(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent.append(f"steady-{i}")
                i += 1
            await asyncio.sleep(tick)
        await asyncio.gather(*tasks)
    await chaos_task
    await wait_replayed(service.writer)
    stats = service.writer.stats
    stored, duplicated = env.stored(acked)
    lost = len(acked) - stored
    report(
        capsys,
        "stop PostgreSQL for 2 s",
        sent=len(sent),
        acknowledged=len(acked),
        stored=stored,
        duplicated=duplicated,
        lost=lost,
        spooled=stats.spooled,
        replayed=stats.replayed,
    )
    assert failures == []
    assert len(acked) == len(sent)
    assert stats.spooled > 0, "the outage did not reach the spool"
    assert lost == 0
    assert duplicated == 0


def _run_child(env: Env, spool: Path, *, stop_db_at: int | None, kill_at: int) -> set[str]:
    """Start the child writer, collect acknowledged ids, SIGKILL it after ``kill_at`` acks
    (stopping PostgreSQL first after ``stop_db_at`` acks, if given)."""
    a = env.world.a
    admin = env.db.admin_url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            admin,
            env.db.settings.roles.owner.removesuffix("_owner"),
            str(spool),
            str(env.tmp / "child-data"),
            str(a.org_id),
            a.owner,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    acked: set[str] = set()
    stopped = False
    assert child.stdout is not None
    timer = threading.Timer(60, child.kill)  # never hang the suite
    timer.start()
    try:
        for line in child.stdout:
            line = line.strip()
            if line == "ready":
                continue
            acked.add(line)
            if stop_db_at is not None and not stopped and len(acked) >= stop_db_at:
                env.own.stop()
                stopped = True
            if len(acked) >= kill_at:
                break
        os.kill(child.pid, signal.SIGKILL)
        # ids already written to the pipe were acknowledged before the kill: read them too
        rest = child.stdout.read()
        acked.update(x for x in rest.split() if x and x != "ready" and len(x) == 36)
        child.wait(10)
    finally:
        timer.cancel()
        if child.poll() is None:
            child.kill()
    if stopped:
        env.own.start()
    return acked


async def replay_with_new_writer(env: Env, spool: Path) -> AuditWriter:
    conninfo = env.db.writer_url.set(drivername="postgresql").render_as_string(hide_password=False)
    writer = AuditWriter(conninfo, Spool(spool))
    await writer.start()
    await wait_replayed(writer)
    await writer.stop()
    return writer


@pytest.mark.parametrize("database_down", [False, True], ids=["db-up", "db-stopped-first"])
async def test_kill_9_the_writing_process_and_restart(
    env: Env, capsys: pytest.CaptureFixture[str], database_down: bool
) -> None:
    spool = env.tmp / "child-spool"
    acked = await asyncio.to_thread(
        _run_child, env, spool, stop_db_at=1500 if database_down else None, kill_at=3000
    )
    left = len(list(spool.glob("spool-*.jsonl")))
    writer = await replay_with_new_writer(env, spool)
    stored, duplicated = env.stored(acked)
    with psycopg.connect(env.admin_conninfo()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_logs WHERE resource_id LIKE 'kill-%'"
        ).fetchone()
    assert row is not None
    report(
        capsys,
        f"kill -9 the writer ({'database stopped first' if database_down else 'database up'})",
        acknowledged=len(acked),
        stored=stored,
        duplicated=duplicated,
        lost=len(acked) - stored,
        rows_in_table=row[0],
        spool_files_left_by_child=left,
        replayed=writer.stats.replayed,
    )
    assert len(acked) >= 3000
    if database_down:
        assert writer.stats.replayed > 0, "nothing went through the spool"
    assert stored == len(acked)
    assert duplicated == 0


async def test_slow_database_spools_within_the_deadline(
    env: Env, service: AuditService, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ACCESS EXCLUSIVE lock holds every insert for 2 s: calls return after about the
    deadline (spooled), and everything lands once the lock is released."""
    a = env.world.a
    writer = service.writer
    latencies: list[float] = []
    ids: set[str] = set()
    locked = asyncio.Event()

    def hold_lock() -> None:
        with psycopg.connect(env.admin_conninfo()) as conn:
            conn.execute("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE")
            locked_at.append(time.monotonic())
            loop.call_soon_threadsafe(locked.set)
            time.sleep(2.0)
            conn.commit()

    loop = asyncio.get_running_loop()
    locked_at: list[float] = []
    holder = asyncio.create_task(asyncio.to_thread(hold_lock))
    await locked.wait()

    async def producer(p: int) -> None:
        with audit_context(actor=a.owner, org_id=a.org_id):
            for i in range(10):
                t0 = time.monotonic()
                event = await log_audit_event("PROFILE_VIEWED", "profile", f"slow-{p}-{i}")
                latencies.append(time.monotonic() - t0)
                ids.add(str(event.id))
                await asyncio.sleep(0.1)

    await asyncio.gather(*(producer(p) for p in range(20)))
    await holder
    await wait_replayed(writer)
    stored, duplicated = env.stored(ids)
    bound = writer.deadline * 2 + writer.window + 0.25
    report(
        capsys,
        "ACCESS EXCLUSIVE lock for 2 s",
        calls=len(latencies),
        max_call_s=round(max(latencies), 3),
        bound_s=round(bound, 3),
        spooled=writer.stats.spooled,
        stored=stored,
        duplicated=duplicated,
    )
    assert writer.stats.spooled > 0
    assert max(latencies) <= bound
    assert stored == len(ids) == 200
    assert duplicated == 0


async def test_fail_closed_when_database_and_spool_are_both_gone(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Database down and the spool unwritable (its directory replaced by a file: chmod does
    not stop root): a fail-closed read is refused, an ordinary event is not."""
    a = env.world.a
    spool_dir = env.tmp / "broken-spool"
    spool = Spool(spool_dir)
    shutil.rmtree(spool_dir)
    spool_dir.write_text("not a directory")
    catalog = build_catalog()
    writer = AuditWriter(
        "postgresql://nobody@127.0.0.1:1/none", spool, deadline=0.2, connect_timeout=0.5
    )
    service = AuditService(
        catalog=catalog, masker=Masker(b"k" * 32, catalog.sensitive_fields), writer=writer
    )
    configure_audit(service)
    await service.start()
    try:
        with audit_context(actor=a.expert, org_id=a.org_id):
            with pytest.raises(AuditUnavailableError):
                await log_audit_event(
                    "MEDICAL_RECORD_VIEWED",
                    "medical_record",
                    str(uuid.uuid4()),
                    data_subject=a.patient,
                )
            await log_audit_event("PROFILE_VIEWED", "profile", "p1")  # does not raise
        stats = writer.stats
        report(
            capsys,
            "database and spool unavailable",
            refused_fail_closed=stats.refused_fail_closed,
            held_in_memory=stats.held_in_memory,
            spool_failures=stats.spool_failures,
        )
        assert stats.refused_fail_closed == 1
        assert stats.held_in_memory == 1
    finally:
        await service.stop()
        configure_audit(None)
