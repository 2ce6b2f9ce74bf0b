"""The bulk scan of verify_org, on one worker and on two: used on an intact log, the same report
either way, and a hand-over to the reference pass (which names the event) on a fault anywhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from integrity_env import Integrity

from carelog.audit.integrity import scan


async def _sealed(integrity: Integrity, n: int = 60, batches: int = 3) -> list:
    ids = []
    per = n // batches
    for b in range(batches):
        ids += integrity.add(per, start=b * per)
        await integrity.sealer.seal_once()
    return ids


async def test_intact_log_uses_the_bulk_scan(integrity: Integrity) -> None:
    integrity.add(10)
    await integrity.sealer.seal_once()
    integrity.add(3, start=10)  # pending: above the horizon, inside a (long) window
    report = await integrity.verify(window=timedelta(days=36500))
    assert report.ok, report.problems
    assert (report.events_checked, report.pending, report.roots) == (10, 3, 1)
    assert not report.reference_pass and report.workers == 1  # a small log: one worker
    integrity.tamper("UPDATE audit_logs SET action = 'X' WHERE resource_id = 'p4'")
    report = await integrity.verify()
    assert report.reference_pass  # handed over to the reference pass, which names the event
    assert report.first_problem is not None and report.first_problem.kind == "altered"
    assert report.first_problem.seq == 4


async def test_two_workers_report_as_one(integrity: Integrity) -> None:
    assert scan.parallel_available()
    ids = await _sealed(integrity)
    integrity.add(3, start=len(ids))  # pending: above the horizon, inside a (long) window
    window = timedelta(days=36500)
    two = await integrity.verify(window=window, workers=2)
    assert two.workers == 2 and not two.reference_pass
    one = await integrity.verify(window=window, workers=1)
    assert one.workers == 1 and not one.reference_pass
    assert two.ok, two.problems
    d_two, d_one = two.to_json_dict(), one.to_json_dict()
    del d_two["seconds"], d_one["seconds"]
    assert d_two == d_one
    assert (two.events_checked, two.pending, two.roots, two.leaves) == (60, 3, 3, 60)


async def test_since_takes_the_bulk_scan_too(integrity: Integrity) -> None:
    from integrity_env import BASE

    await _sealed(integrity)
    for workers in (1, 2):
        report = await integrity.verify(since=BASE + timedelta(seconds=25), workers=workers)
        assert report.ok and not report.reference_pass and report.workers == workers
        assert (report.events_checked, report.skipped_before_since) == (35, 25)


@pytest.mark.parametrize("index", [3, 29, 30, 57])
async def test_tampered_event_in_either_half_is_named(integrity: Integrity, index: int) -> None:
    ids = await _sealed(integrity)
    first_run = await integrity.verify(workers=2)
    assert first_run.ok and first_run.workers == 2
    integrity.tamper("UPDATE audit_logs SET action = 'X' WHERE id = :id", id=ids[index])
    report = await integrity.verify(workers=2)
    assert report.reference_pass  # handed over to the reference pass, which names the event
    first = report.first_problem
    assert first is not None and first.kind == "altered"
    assert (first.seq, first.event_id) == (index, str(ids[index]))


async def test_purged_events_and_deleted_boundary(integrity: Integrity) -> None:
    ids = await _sealed(integrity)
    with integrity.admin().begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        gone = ids[:5] + ids[30:33]  # seq 30 is where the log is cut in two
        conn.execute(sa.text("DELETE FROM audit_logs WHERE id = ANY(:ids)"), {"ids": gone})
        conn.execute(
            sa.text("UPDATE audit_seals SET purged = true WHERE event_id = ANY(:ids)"),
            {"ids": gone},
        )
    report = await integrity.verify(workers=2)
    assert report.workers == 2 and not report.reference_pass
    assert report.ok, report.problems
    assert (report.purged, report.events_checked, report.roots) == (8, 52, 3)
    integrity.tamper("DELETE FROM audit_logs WHERE id = :id", id=ids[40])
    report = await integrity.verify(workers=2)
    assert report.reference_pass
    first = report.first_problem
    assert first is not None and (first.kind, first.seq) == ("missing", 40)


async def test_a_worker_that_cannot_run_leaves_it_to_one(
    integrity: Integrity, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _sealed(integrity)
    monkeypatch.setattr(scan, "conninfo_of", lambda conn: "host=/nonexistent dbname=x")
    report = await integrity.verify(workers=2)
    assert report.ok and report.workers == 1 and not report.reference_pass
    assert report.events_checked == 60
