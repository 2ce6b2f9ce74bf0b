"""The two-worker path of verify_org: the same bytes as the reference path (quick and slow
route), the same report as the single-connection path on an intact log, and a hand-over to
the reference pass (which names the event) on a fault in either half."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from integrity_env import (
    JSON_VALUES,
    TEXT,
    Integrity,
    admin_conninfo,
    make_event,
    reference_canonicals,
)
from test_sealer import TRICKY

from carelog.audit.integrity import parallel
from carelog.audit.integrity.parallel import RawCanonicaliser, events_copy, split_line


async def _both_paths(integrity: Integrity) -> tuple[list[bytes], list[bytes]]:
    """Canonical bytes of every event of the org: raw COPY + Python, and the reference path."""
    async with await psycopg.AsyncConnection.connect(admin_conninfo(integrity)) as conn:
        canon = RawCanonicaliser()
        fast = []
        async with conn.cursor() as cur, cur.copy(events_copy(integrity.org)) as copy:
            async for data in copy:
                line = bytes(data)
                fast.append(canon.canonical(split_line(line), line))
        reference = await reference_canonicals(conn, integrity.org)
    return fast, reference


async def test_raw_copy_equals_the_reference_path(integrity: Integrity) -> None:
    rows = []
    for i, override in enumerate(TRICKY):
        row = make_event(integrity.org, i)
        row.update(override)
        rows.append(row)
    rows.append(make_event(integrity.org, 4, metadata=None, old_values={"ü": 1.25, "a": [2**70]}))
    rows.append(make_event(integrity.org, 5, metadata={"n": 10**30, "s": "a\\\\b\\"}))
    rows.append(make_event(integrity.org, 6, resource_id="", request_id=None, user_agent=""))
    rows.append(make_event(integrity.org, 7, resource_id=None, data_subject_id="", user_agent=None))
    rows.append(make_event(integrity.org, 8, resource_id='say "hi"', metadata={"q": 'a"b'}))
    rows.append(make_event(integrity.org, 9, action="\\N", resource_id="x\ny\x1fz"))
    for outcome in ("success", "failure", "denied"):
        rows.append(make_event(integrity.org, 10, outcome=outcome, data_subject_id=None))
    integrity.insert(rows)
    fast, reference = await _both_paths(integrity)
    assert len(fast) == len(rows) and fast == reference


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=TEXT,
    optional=st.none() | TEXT,
    metadata=st.none() | st.dictionaries(TEXT, JSON_VALUES, max_size=4),
    ip=st.none() | st.ip_addresses(v=6).map(str) | st.ip_addresses(v=4).map(str),
)
async def test_raw_copy_equals_reference_on_random_events(
    integrity: Integrity, text: str, optional: str | None, metadata: object, ip: str | None
) -> None:
    integrity.insert(
        [
            make_event(
                integrity.org,
                1,
                action=text or "a",
                user_agent=optional,
                request_id=optional,
                resource_id=text,
                data_subject_id=optional,
                metadata=metadata,
                new_values={"v": [text, metadata]},
                ip_address=ip,
            )
        ]
    )
    fast, reference = await _both_paths(integrity)
    assert fast == reference


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every result of the two-worker pass; the size threshold lowered to test sizes."""
    monkeypatch.setattr(parallel, "MIN_LEAVES", 10)
    results: list[object] = []
    original = parallel.parallel_pass

    async def record(*args: object, **kwargs: object) -> object:
        result = await original(*args, **kwargs)  # type: ignore[arg-type]
        results.append(result)
        return result

    monkeypatch.setattr("carelog.audit.integrity.verify.parallel_pass", record)
    return results


async def _sealed(integrity: Integrity, n: int = 60, batches: int = 3) -> list:
    ids = []
    per = n // batches
    for b in range(batches):
        ids += integrity.add(per, start=b * per)
        await integrity.sealer.seal_once()
    return ids


async def test_two_workers_report_as_the_single_path(
    integrity: Integrity, spy: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parallel.parallel_available()
    ids = await _sealed(integrity)
    integrity.add(3, start=len(ids))  # pending: above the horizon, inside a (long) window
    window = timedelta(days=36500)
    two = await integrity.verify(window=window)
    assert isinstance(spy[-1], parallel.ParallelResult) and len(spy[-1].tail) == 3
    monkeypatch.setattr(parallel, "MIN_LEAVES", 10**9)
    one = await integrity.verify(window=window)
    assert spy[-1] is False  # the single-connection fast path
    assert two.ok, two.problems
    d_two, d_one = two.to_json_dict(), one.to_json_dict()
    del d_two["seconds"], d_one["seconds"]
    assert d_two == d_one
    assert (two.events_checked, two.pending, two.roots, two.leaves) == (60, 3, 3, 60)


@pytest.mark.parametrize("index", [3, 29, 30, 57])
async def test_tampered_event_in_either_half_is_named(
    integrity: Integrity, spy: list[object], index: int
) -> None:
    ids = await _sealed(integrity)
    assert (await integrity.verify()).ok
    assert isinstance(spy[-1], parallel.ParallelResult)
    integrity.tamper("UPDATE audit_logs SET action = 'X' WHERE id = :id", id=ids[index])
    report = await integrity.verify()
    assert spy[-1] is None  # handed over to the reference pass, which names the event
    first = report.first_problem
    assert first is not None and first.kind == "altered"
    assert (first.seq, first.event_id) == (index, str(ids[index]))


async def test_purged_events_and_deleted_boundary(integrity: Integrity, spy: list[object]) -> None:
    ids = await _sealed(integrity)
    with integrity.admin().begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        gone = ids[:5] + ids[30:33]  # seq 30 is where the log is cut in two
        conn.execute(sa.text("DELETE FROM audit_logs WHERE id = ANY(:ids)"), {"ids": gone})
        conn.execute(
            sa.text("UPDATE audit_seals SET purged = true WHERE event_id = ANY(:ids)"),
            {"ids": gone},
        )
    report = await integrity.verify()
    assert isinstance(spy[-1], parallel.ParallelResult)
    assert report.ok, report.problems
    assert (report.purged, report.events_checked, report.roots) == (8, 52, 3)
    integrity.tamper("DELETE FROM audit_logs WHERE id = :id", id=ids[40])
    report = await integrity.verify()
    assert spy[-1] is None
    first = report.first_problem
    assert first is not None and (first.kind, first.seq) == ("missing", 40)
