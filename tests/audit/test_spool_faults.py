"""Fault tests of the spool under stress: a full disk, corrupted lines, lines PostgreSQL refuses.

Each test prints acknowledged / stored / lost / duplicated. A disk is filled for real: a small
tmpfs is mounted (root only; the test is skipped elsewhere) and a filler file takes its space.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from carelog.audit import AuditUnavailableError, audit_context, configure_audit, log_audit_event
from carelog.audit.api import AuditService
from carelog.audit.events import Masker
from carelog.audit.redrive import redrive
from carelog.audit.spool import Spool, encode_body
from carelog.audit.writer import AuditWriter
from carelog.platform.audit_catalog import build_catalog
from fault_env import Env, env, own_pg, report, wait_replayed

__all__ = ["env", "own_pg"]  # fixtures used by the tests below

pytestmark = [pytest.mark.fault, pytest.mark.slow]


@contextlib.contextmanager
def small_disk(where: Path, size: str = "1m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A filler file taking all of ``disk`` but about ``leave`` bytes."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def service_for(env: Env, spool: Spool, **kw: float) -> AuditService:
    conninfo = env.db.writer_url.set(drivername="postgresql").render_as_string(hide_password=False)
    catalog = build_catalog()
    writer = AuditWriter(conninfo, spool, deadline=0.2, connect_timeout=0.5, **kw)  # type: ignore[arg-type]
    return AuditService(
        catalog=catalog, masker=Masker(b"k" * 32, catalog.sensitive_fields), writer=writer
    )


async def test_disk_full_mid_stream_never_acknowledges_from_memory_nor_corrupts(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stopped, the spool's disk fills up mid-stream, then frees up again: every
    acknowledged event is stored exactly once; calls that found the disk full failed (they
    were not acknowledged from memory); no fragment glued two lines together."""
    a = env.world.a
    with small_disk(tmp_path / "disk", "1m") as disk:
        filler = fill(disk, leave=96 * 1024)
        service = service_for(env, Spool(disk / "spool"))
        configure_audit(service)
        await service.start()
        env.own.stop()
        acked: set[str] = set()
        refused = 0
        blob = "x" * 900  # ~1 KB per line: the free space lasts about 90 lines

        async def producer(p: int, rounds: int) -> None:
            nonlocal refused
            with audit_context(actor_id=a.owner, org_id=a.org_id):
                for i in range(rounds):
                    try:
                        event = await log_audit_event(
                            "PROFILE_VIEWED", "profile", f"full-{p}-{i}", metadata={"pad": blob}
                        )
                    except AuditUnavailableError:
                        refused += 1
                        continue
                    acked.add(str(event.id))

        try:
            await asyncio.gather(*(producer(p, 30) for p in range(8)))  # fills the disk
            refused_while_full = refused
            health_while_full = service.writer.health()
            filler.unlink()  # space again
            await asyncio.gather(*(producer(p + 100, 10) for p in range(8)))
            env.own.start()
            await wait_replayed(service.writer)
        finally:
            await service.stop()
            configure_audit(None)
            if not env.own.running():
                env.own.start()
        quarantined = service.writer.spool.quarantine.count()
    stored, duplicated = env.stored(acked)
    report(
        capsys,
        "spool disk full mid-stream (database stopped)",
        acknowledged=len(acked),
        refused=refused,
        stored=stored,
        lost=len(acked) - stored,
        duplicated=duplicated,
        quarantined=quarantined,
    )
    assert refused_while_full > 0, "the disk never filled up"
    assert health_while_full["state"] == "refusing"
    assert len(acked) > 100
    assert stored == len(acked)
    assert duplicated == 0
    assert quarantined == 0
    spool_logs = [r.getMessage() for r in caplog.records if "spool append failed" in r.getMessage()]
    assert len(spool_logs) >= 1 and all("ENOSPC" in m for m in spool_logs), spool_logs


def _line(row: dict[str, object]) -> bytes:
    return encode_body(orjson.dumps(row))


def spool_row(env: Env, org: object, rid: str) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "org_id": str(org),
        "workos_user_id": env.world.a.owner,
        "actor_type": "user",
        "action": "PROFILE_VIEWED",
        "resource_type": "profile",
        "resource_id": rid,
        "outcome": "success",
        "data_subject_id": None,
        "old_values": None,
        "new_values": None,
        "metadata": None,
        "ip_address": None,
        "user_agent": None,
        "request_id": None,
        # Recent, as a spool line left by a process that just died (the database refuses
        # replays dated far back: migration 0010).
        "created_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "source": "api",
        "schema_version": 1,
    }


async def test_corrupted_line_is_quarantined_not_dropped(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A spool file left by a dead process has one line changed on disk: the others are
    replayed, the bad one is kept with its bytes, file and line number, a CRITICAL line names
    it, /health's counter shows it."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    rows = [spool_row(env, env.world.a.org_id, f"corrupt-{i}") for i in range(5)]
    lines = [_line(r) for r in rows]
    bad = bytearray(lines[2])
    bad[40] ^= 0x01  # one bit flipped
    lines[2] = bytes(bad)
    path = spool_dir / "spool-00000000000000000001-1.jsonl"
    path.write_bytes(b"".join(lines))
    service = service_for(env, Spool(spool_dir))
    with caplog.at_level(logging.WARNING):
        await service.start()
        await wait_replayed(service.writer)
        health = service.writer.health()
        await service.stop()
    good = {str(r["id"]) for i, r in enumerate(rows) if i != 2}
    stored, duplicated = env.stored(good)
    (entry,) = list(Spool(spool_dir).quarantine.entries())
    report(
        capsys,
        "one corrupted spool line",
        lines=5,
        stored=stored,
        quarantined=health["quarantined"],
        lost=len(good) - stored,
        duplicated=duplicated,
    )
    assert stored == 4 and duplicated == 0
    assert (entry.file, entry.line, entry.kind, entry.data) == (path.name, 3, "unreadable", bad)
    assert "CRC" in entry.reason
    assert health["quarantined"] == 1
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any(path.name in r.getMessage() and "line 3" in r.getMessage() for r in critical)
    assert not path.exists()  # replayed; its unreadable line lives on in the quarantine

    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "carelog.cli.main", "audit", "spool", "status", "--json"],
        env={**os.environ, "CARELOG_AUDIT_SPOOL_DIR": str(spool_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1, cli.stdout + cli.stderr  # something needs an operator
    (shown,) = json.loads(cli.stdout)["quarantined"]
    assert (shown["file"], shown["line"], shown["kind"]) == (path.name, 3, "unreadable")


async def test_line_refused_by_postgres_is_quarantined_and_replay_continues(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid line naming an organization that does not exist sits between good lines: the
    good ones are stored, the circuit closes, new events go through, the poison line is kept
    with the database's reason; once the organization exists a re-drive stores it."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    ghost = uuid.uuid4()
    rows = [spool_row(env, env.world.a.org_id, f"poison-{i}") for i in range(6)]
    rows[3] = spool_row(env, ghost, "poison-ghost")
    path = spool_dir / "spool-00000000000000000001-1.jsonl"
    path.write_bytes(b"".join(_line(r) for r in rows))
    service = service_for(env, Spool(spool_dir))
    configure_audit(service)
    await service.start()
    try:
        await wait_replayed(service.writer, limit=10)
        with audit_context(actor_id=env.world.a.owner, org_id=env.world.a.org_id):
            after = await log_audit_event("PROFILE_VIEWED", "profile", "after-poison")
        health = service.writer.health()
    finally:
        await service.stop()
        configure_audit(None)
    good = {str(r["id"]) for i, r in enumerate(rows) if i != 3} | {str(after.id)}
    stored, duplicated = env.stored(good)
    quarantine = Spool(spool_dir).quarantine
    (entry,) = list(quarantine.entries())
    report(
        capsys,
        "a line PostgreSQL refuses",
        lines=6,
        stored=stored,
        quarantined=health["quarantined"],
        lost=len(good) - stored,
        duplicated=duplicated,
        reason=entry.reason,
    )
    assert stored == len(good) == 6 and duplicated == 0
    assert health["state"] == "ok" and health["quarantined"] == 1
    assert (entry.file, entry.line, entry.kind) == (path.name, 4, "refused")
    assert "SQLSTATE" in entry.reason
    assert orjson.loads(entry.data[9:-1])["org_id"] == str(ghost)
    assert zlib.crc32(entry.data[9:-1]) == int(entry.data[:8], 16)

    # still refused: kept
    writer_url = service.writer.conninfo
    result = await redrive(quarantine, writer_url)
    assert (result.stored, result.kept) == (0, 1)
    with psycopg.connect(env.admin_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO organizations (id, workos_org_id, name, slug, type) "
            "VALUES (%s, %s, 'Restored', %s, 'clinic')",
            (ghost, f"org_{ghost.hex}", f"restored-{ghost.hex[:8]}"),
        )
    result = await redrive(quarantine, writer_url)
    assert (result.stored, result.kept) == (1, 0)
    assert list(quarantine.entries()) == []
    assert env.stored({str(rows[3]["id"])}) == (1, 0)
