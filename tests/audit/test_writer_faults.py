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
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from carelog.audit import AuditUnavailableError, audit_context, configure_audit, log_audit_event
from carelog.audit.api import AuditService
from carelog.audit.events import Masker
from carelog.audit.setup import create_audit_service
from carelog.audit.spool import Spool
from carelog.audit.writer import AuditWriter
from carelog.platform.audit_catalog import build_catalog
from fault_env import Env, env, own_pg, report, wait_replayed

__all__ = ["env", "own_pg"]  # fixtures used by the tests below

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CHILD = Path(__file__).with_name("fault_child.py")


@pytest.fixture
async def service(env: Env) -> AsyncIterator[AuditService]:
    svc = create_audit_service(env.db, build_catalog(), spool_dir=env.tmp / "spool")
    configure_audit(svc)
    await svc.start()
    yield svc
    await svc.stop()
    configure_audit(None)
    await env.db.dispose()


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
    with audit_context(actor_id=a.owner, org_id=a.org_id):
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
        with audit_context(actor_id=a.owner, org_id=a.org_id):
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


async def test_every_action_refused_when_database_and_spool_are_both_gone(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Database down and the spool unwritable (its directory replaced by a file: chmod does
    not stop root): nothing can be made durable, so every call fails, fail-closed or not;
    no event is acknowledged from memory."""
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
        with audit_context(actor_id=a.expert, org_id=a.org_id):
            with pytest.raises(AuditUnavailableError):
                await log_audit_event(
                    "MEDICAL_RECORD_VIEWED",
                    "medical_record",
                    str(uuid.uuid4()),
                    data_subject=a.patient,
                )
            with pytest.raises(AuditUnavailableError):
                await log_audit_event("PROFILE_VIEWED", "profile", "p1")
        stats = writer.stats
        report(
            capsys,
            "database and spool unavailable",
            acknowledged=0,
            refused=stats.refused,
            refused_fail_closed=stats.refused_fail_closed,
            spool_failures=stats.spool_failures,
        )
        assert stats.refused == 2 and stats.refused_fail_closed == 1
        assert writer.health()["state"] == "refusing"
        assert "held_in_memory" not in stats.as_dict()
    finally:
        await service.stop()
        configure_audit(None)
