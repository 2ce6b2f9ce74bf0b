"""The bulk COPY fast path of verify_org: same bytes as the reference path, used on an intact
log, and handing over to the reference pass (which names the fault) on anything else."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
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

from carelog.audit.integrity import fastpath
from carelog.audit.integrity.fastpath import _EVENTS_COPY, canonical_from_copy_line


async def _both_paths(integrity: Integrity) -> tuple[list[bytes], list[bytes]]:
    """Canonical bytes of every event of the org: COPY fast path, and the reference path."""
    before, after = _EVENTS_COPY
    statement = psycopg.sql.Composed(
        [psycopg.sql.SQL(before), psycopg.sql.Literal(str(integrity.org)), psycopg.sql.SQL(after)]
    )
    async with await psycopg.AsyncConnection.connect(admin_conninfo(integrity)) as conn:
        fast = []
        async with conn.cursor() as cur, cur.copy(statement) as copy:
            async for data in copy:
                fast.append(canonical_from_copy_line(bytes(data)))
        reference = await reference_canonicals(conn, integrity.org)
    return fast, reference


async def test_copy_path_equals_the_reference_path(integrity: Integrity) -> None:
    rows = []
    for i, override in enumerate(TRICKY):
        row = make_event(integrity.org, i)
        row.update(override)
        rows.append(row)
    rows.append(make_event(integrity.org, 3))  # decimals in metadata, unicode keys
    rows.append(make_event(integrity.org, 4, metadata=None, old_values={"ü": 1.25, "a": [2**70]}))
    rows.append(make_event(integrity.org, 5, metadata={"n": 10**30, "s": "a\\\\b\\"}))
    for outcome in ("success", "failure", "denied"):
        rows.append(make_event(integrity.org, 6, outcome=outcome, data_subject_id=None))
    integrity.insert(rows)
    fast, reference = await _both_paths(integrity)
    assert len(fast) == len(rows) and fast == reference


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=TEXT,
    metadata=st.dictionaries(TEXT, JSON_VALUES, max_size=4),
    ip=st.ip_addresses(v=6).map(str) | st.ip_addresses(v=4).map(str),
)
async def test_copy_path_equals_reference_on_random_events(
    integrity: Integrity, text: str, metadata: dict[str, object], ip: str
) -> None:
    integrity.insert(
        [
            make_event(
                integrity.org,
                1,
                user_agent=text,
                resource_id=text,
                metadata=metadata,
                new_values={"v": [text, metadata]},
                ip_address=ip,
            )
        ]
    )
    fast, reference = await _both_paths(integrity)
    assert fast == reference


async def test_intact_log_uses_the_fast_path(
    integrity: Integrity, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = []
    original = fastpath.fast_pass

    async def spy(*args: object) -> object:
        result = await original(*args)  # type: ignore[arg-type]
        results.append(result)
        return result

    monkeypatch.setattr("carelog.audit.integrity.verify.fast_pass", spy)
    integrity.add(10)
    await integrity.sealer.seal_once()
    integrity.add(3, start=10)  # pending: above the horizon, inside a (long) window
    report = await integrity.verify(window=timedelta(days=36500))
    assert report.ok, report.problems
    assert (report.events_checked, report.pending, report.roots) == (10, 3, 1)
    assert results and results[0] is not None and len(results[0].tail) == 3
    integrity.tamper("UPDATE audit_logs SET action = 'X' WHERE resource_id = 'p4'")
    report = await integrity.verify()
    assert results[-1] is None  # handed over to the reference pass, which names the event
    assert report.first_problem is not None and report.first_problem.kind == "altered"
    assert report.first_problem.seq == 4
