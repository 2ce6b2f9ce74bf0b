"""The one encoder of stored rows: its quick route and its exact route give the bytes of the
reference (typed values, canonical rules) on awkward and on random events."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from integrity_env import (
    JSON_VALUES,
    TEXT,
    Integrity,
    admin_conninfo,
    encoder_canonicals,
    make_event,
    reference_canonicals,
)
from test_sealer import TRICKY


async def _both_paths(integrity: Integrity) -> tuple[list[bytes], list[bytes]]:
    """Canonical bytes of every event of the org: the encoder's usual route, and the reference;
    the encoder's exact route must agree too."""
    async with await psycopg.AsyncConnection.connect(admin_conninfo(integrity)) as conn:
        fast, exact = await encoder_canonicals(conn, integrity.org)
        reference = await reference_canonicals(conn, integrity.org)
    assert exact == reference
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
    rows.append(make_event(integrity.org, 6, resource_id="", request_id=None, user_agent=""))
    rows.append(make_event(integrity.org, 7, resource_id=None, data_subject_id="", user_agent=None))
    rows.append(make_event(integrity.org, 8, resource_id='say "hi"', metadata={"q": 'a"b'}))
    rows.append(make_event(integrity.org, 9, action="\\N", resource_id="x\ny\x1fz"))
    # a decimal deep inside, beside dotted strings: the exact route keeps the number's text
    rows.append(make_event(integrity.org, 11, metadata={"h": "a.example", "d": [{"x": 0.1}]}))
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
async def test_copy_path_equals_reference_on_random_events(
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


def test_event_format_matches_the_audit_logs_table(integrity: Integrity) -> None:
    """The format's field list is fixed in code (it is a file format); this keeps it in step
    with the migrated table: same columns, and the types and NULLs the encoder assumes."""
    from carelog.audit.integrity.rows import CURRENT_FORMAT, EXCLUDED_COLUMNS

    with integrity.admin().connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT column_name, udt_name, is_nullable = 'YES' FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = 'audit_logs'"
            )
        ).all()
    columns = {name: (udt, nullable) for name, udt, nullable in rows}
    f = CURRENT_FORMAT
    assert sorted(columns) == sorted(f.fields + EXCLUDED_COLUMNS)
    assert {c for c in f.fields if columns[c][0] == "jsonb"} == set(f.json_fields)
    assert {c for c in f.fields if columns[c][0] == "inet"} == {f.inet_field}
    assert {c for c in f.fields if columns[c][0].startswith("int")} == set(f.int_fields)
    texts = {c for c in f.fields if columns[c][0] == "text"}
    assert {c for c in texts if columns[c][1]} == set(f.nullable_text)
