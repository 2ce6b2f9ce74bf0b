"""Exports: valid documents in every format, exact counts, flat memory, and each one on record."""

from __future__ import annotations

import csv
import io
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from audit_rows import BASE, all_rows, bulk_insert, insert, matches, random_events

from carelog.audit.api import AuditService, configure_audit
from carelog.audit.catalog import AuditCatalog
from carelog.audit.errors import AuditInputError
from carelog.audit.events import Masker
from carelog.audit.export import ExportReceipt, export_audit_logs, stream_export
from carelog.audit.filters import AuditFilters
from carelog.audit.query import COLUMNS
from carelog.audit.spool import Spool
from carelog.audit.writer import AuditWriter
from carelog.db.engine import Database
from carelog.db.session import Scopes
from world import World, build_world


@pytest.fixture
async def audit_service(fresh_db: Database, tmp_path: Path) -> AsyncIterator[AuditService]:
    conninfo = fresh_db.writer_url.set(drivername="postgresql").render_as_string(
        hide_password=False
    )
    service = AuditService(
        catalog=AuditCatalog.build([], []),
        masker=Masker(secrets.token_bytes(32), frozenset()),
        writer=AuditWriter(conninfo, Spool(tmp_path / "spool")),
    )
    configure_audit(service)
    await service.start()
    yield service
    await service.stop()
    configure_audit(None)


@pytest.fixture
def world(fresh_db: Database) -> World:
    w = build_world(fresh_db.sync_engine("admin"))
    insert(fresh_db.sync_engine("admin"), random_events(w.a.org_id, 2500))
    insert(fresh_db.sync_engine("admin"), random_events(w.b.org_id, 40, seed=3))
    return w


async def run_export(
    scopes: Scopes, world: World, filters: AuditFilters, fmt: str, **kwargs: Any
) -> tuple[bytes, ExportReceipt]:
    receipt = ExportReceipt()
    chunks = []
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        async for chunk in export_audit_logs(
            session, world.a.org_id, world.a.owner, filters, fmt, receipt=receipt, **kwargs
        ):
            chunks.append(chunk)
    return b"".join(chunks), receipt


def parse(fmt: str, body: bytes) -> list[dict[str, Any]]:
    text = body.decode()
    if fmt == "jsonl":
        # JSONL lines end at "\n" only (splitlines() would also split inside a string at U+2028).
        return [json.loads(line) for line in text.split("\n") if line]
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)
    events = json.loads(text)
    assert isinstance(events, list)
    return events


def ids_of(fmt: str, items: list[dict[str, Any]]) -> list[uuid.UUID]:
    if fmt == "workos":
        return [uuid.UUID(e["metadata"]["event_id"]) for e in items]
    return [uuid.UUID(e["id"]) for e in items]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "workos"])
async def test_export_is_valid_complete_and_recorded(
    fresh_db: Database, scopes: Scopes, world: World, audit_service: AuditService, fmt: str
) -> None:
    conditions: dict[str, Any] = {
        "start": BASE + timedelta(days=3),
        "end": BASE + timedelta(days=600),
        "outcomes": ("success", "denied"),
    }
    rows = all_rows(fresh_db.sync_engine("admin"), world.a.org_id)
    expected = [r for r in rows if matches(r, **conditions)]
    seen: list[int] = []
    body, receipt = await run_export(
        scopes,
        world,
        AuditFilters(**conditions),
        fmt,
        reason="SOC 2 sample",
        on_rows=seen.append,
        batch_size=300,
    )
    items = parse(fmt, body)
    assert ids_of(fmt, items) == [r["id"] for r in expected]
    assert receipt.row_count == len(expected) == sum(seen) > 1000
    assert max(seen) <= 300
    assert receipt.status == "completed"
    by_id = {r["id"]: r for r in expected}
    for item in items[:200]:
        _check_item(fmt, item, by_id)

    with fresh_db.sync_engine("admin").connect() as conn:
        record = conn.execute(
            sa.text("select * from audit_log_exports where id = :id"), {"id": receipt.export_id}
        ).one()
        await audit_service.writer.stop()  # drained: the event is in the table
        event = conn.execute(
            sa.text(
                "select * from audit_logs where action = 'AUDIT_LOG_EXPORTED' and resource_id = :id"
            ),
            {"id": str(receipt.export_id)},
        ).one()
    assert record.status == "completed" and record.row_count == len(expected)
    assert record.format == fmt and record.requested_by == world.a.owner
    assert record.reason == "SOC 2 sample" and record.completed_at is not None
    assert record.filters == AuditFilters(**conditions).to_json_dict()
    assert record.org_id == world.a.org_id
    assert event.org_id == world.a.org_id and event.workos_user_id == world.a.owner
    assert event.resource_type == "audit_log"
    assert event.metadata["row_count"] == len(expected)
    assert event.metadata["format"] == fmt
    assert event.metadata["filters"] == record.filters
    assert event.metadata["reason"] == "SOC 2 sample"


def _check_item(fmt: str, item: dict[str, Any], by_id: dict[uuid.UUID, dict[str, Any]]) -> None:
    if fmt == "workos":
        row = by_id[uuid.UUID(item["metadata"]["event_id"])]
        assert set(item) == {
            "action",
            "occurred_at",
            "version",
            "actor",
            "targets",
            "context",
            "metadata",
        }
        assert item["action"] == row["action"]
        assert item["occurred_at"] == row["created_at"].isoformat()
        assert item["actor"] == {"id": row["workos_user_id"], "type": row["actor_type"]}
        assert item["targets"] == [{"id": row["resource_id"], "type": row["resource_type"]}]
        assert item["context"] == {
            "location": row["ip_address"] or "",
            "user_agent": row["user_agent"] or "",
        }
        meta = item["metadata"]
        assert meta["outcome"] == row["outcome"] and meta["request_id"] == row["request_id"]
        assert meta.get("data_subject_id") == row["data_subject_id"]
        assert meta.get("details") == row["metadata"]
        if row["old_values"] is not None or row["new_values"] is not None:
            assert meta["changes"] == {"old": row["old_values"], "new": row["new_values"]}
        return
    row = by_id[uuid.UUID(item["id"])]
    if fmt == "jsonl":
        assert item["created_at"] == row["created_at"].isoformat()
        for key in ("metadata", "old_values", "new_values", "user_agent", "ip_address"):
            assert item[key] == row[key]
        return
    assert item["user_agent"] == (row["user_agent"] or "")
    assert item["ip_address"] == (row["ip_address"] or "")
    for key in ("metadata", "old_values", "new_values"):
        assert (json.loads(item[key]) if item[key] else None) == row[key]


@pytest.mark.parametrize(("fmt", "empty"), [("jsonl", b""), ("workos", b"[]\n")])
async def test_an_empty_export_is_still_a_valid_document(
    scopes: Scopes, world: World, audit_service: AuditService, fmt: str, empty: bytes
) -> None:
    body, receipt = await run_export(scopes, world, AuditFilters(actor_id="nobody"), fmt)
    assert body == empty
    assert receipt.row_count == 0 and receipt.status == "completed"


async def test_an_empty_csv_export_has_its_header(
    scopes: Scopes, world: World, audit_service: AuditService
) -> None:
    body, _ = await run_export(scopes, world, AuditFilters(actor_id="nobody"), "csv")
    assert parse("csv", body) == []


async def test_export_memory_stays_flat(fresh_db: Database, scopes: Scopes) -> None:
    """50,000 rows leave in chunks of at most one batch: nothing accumulates."""
    world = build_world(fresh_db.sync_engine("admin"))
    bulk_insert(fresh_db.sync_engine("admin"), world.a.org_id, 50_000)
    per_chunk: list[int] = []
    lines = 0
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        stream = stream_export(
            session,
            world.a.org_id,
            AuditFilters(),
            "jsonl",
            on_rows=per_chunk.append,
            batch_size=1000,
        )
        async with aclosing(stream):  # the COPY holds the connection until the stream closes
            async for chunk in stream:
                n = chunk.count(b"\n")
                assert n <= 1000
                lines += n
                if lines == n:  # the rows stay on the server: it is still sending them, mid-stream
                    with fresh_db.sync_engine("admin").connect() as conn:
                        sending = conn.execute(
                            sa.text(
                                "select count(*) from pg_stat_activity where state = 'active'"
                                " and query like 'COPY (SELECT %'"
                            )
                        ).scalar_one()
                    assert sending == 1
    assert lines == sum(per_chunk) == 50_001  # the world's own event too
    assert max(per_chunk) <= 1000 and len(per_chunk) >= 50


async def test_export_stopped_early_is_recorded_as_aborted(
    fresh_db: Database, scopes: Scopes, world: World, audit_service: AuditService
) -> None:
    receipt = ExportReceipt()
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        stream = export_audit_logs(
            session,
            world.a.org_id,
            world.a.owner,
            AuditFilters(),
            "jsonl",
            receipt=receipt,
            batch_size=100,
        )
        await anext(stream)
        await stream.aclose()
    assert receipt.status == "aborted"
    with fresh_db.sync_engine("admin").connect() as conn:
        status, rows = conn.execute(
            sa.text("select status, row_count from audit_log_exports where id = :id"),
            {"id": receipt.export_id},
        ).one()
    assert (status, rows) == ("aborted", 100)


async def test_a_member_cannot_export(
    scopes: Scopes, world: World, audit_service: AuditService
) -> None:
    with pytest.raises(sa.exc.DBAPIError, match="row-level security"):
        async with scopes.org_scope(world.a.member, world.a.org_id) as session:
            async for _ in export_audit_logs(
                session, world.a.org_id, world.a.member, AuditFilters(), "csv"
            ):
                pass


async def test_unknown_format_is_refused(scopes: Scopes, world: World) -> None:
    with pytest.raises(AuditInputError) as info:
        async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
            async for _ in export_audit_logs(
                session, world.a.org_id, world.a.owner, AuditFilters(), "xml"
            ):
                pass
    assert info.value.field == "format"


async def test_jsonl_lines_rendered_by_postgresql_match_the_read_api(
    fresh_db: Database, scopes: Scopes, world: World, audit_service: AuditService
) -> None:
    """The JSONL export is rendered by PostgreSQL; each line must carry what the read API
    returns for the same event, value for value (times as ``isoformat()`` in UTC, addresses as
    text, JSON as stored), including times on a whole second, IPv6, escapes and non-ASCII."""
    from carelog.audit.query import get_audit_logs

    edge = random_events(world.a.org_id, 6, seed=11)
    edge[0].update(created_at=BASE.replace(microsecond=0), ip_address="::ffff:10.0.0.1")
    edge[1].update(created_at=BASE + timedelta(microseconds=120), ip_address="2001:db8::/64")
    edge[2].update(metadata={"n": '\u00e9\u4e2d\u0001\t"\\', "deep": {"x": [None, True, 1.25]}})
    edge[3].update(user_agent="tab\tand\u2028separator", resource_id=None)
    insert(fresh_db.sync_engine("admin"), edge)

    body, _ = await run_export(scopes, world, AuditFilters(), "jsonl")
    exported = {line["id"]: line for line in parse("jsonl", body)}
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        cursor = None
        read: list[dict[str, Any]] = []
        while True:
            page = await get_audit_logs(session, world.a.org_id, AuditFilters(limit=500), cursor)
            read += [r.to_json_dict() for r in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    later = [r for r in read if r["id"] not in exported]  # this export's own events
    assert all(r["action"].startswith("AUDIT_LOG_EXPORT") for r in later)
    read = [r for r in read if r["id"] in exported]
    assert len(read) == len(exported) > 2500
    for record in read:
        assert exported[record["id"]] == record
    assert list(exported) == [r["id"] for r in read]  # the same order: newest first


_JSON = ("old_values", "new_values", "metadata")


def _expected_cells(record: dict[str, Any]) -> list[Any]:
    """The CSV cells of a read API record, spelled out here rather than by the exporter."""
    cells = []
    for name in COLUMNS:
        value = record[name]
        if name in _JSON:
            cells.append(value)  # compared as parsed JSON: the cell holds the stored text
        elif value is None:
            cells.append("")
        else:
            text = str(value)
            cells.append("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else text)
    return cells


async def test_csv_rows_rendered_from_postgresql_lines_match_the_read_api(
    fresh_db: Database, scopes: Scopes, world: World, audit_service: AuditService
) -> None:
    """The CSV export's rows come from PostgreSQL's rendered lines; each must hold the read
    API's values for the event: formula-like cells neutralised, quotes, commas, CR and LF
    quoted (RFC 4180 line ends), times in UTC, IPv6, JSON as stored, non-ASCII kept."""
    from carelog.audit.query import get_audit_logs

    edge = random_events(world.a.org_id, 6, seed=12)
    edge[0].update(created_at=BASE.replace(microsecond=0), ip_address="2001:db8::/64")
    edge[1].update(user_agent='=HYPERLINK("http://x","y"), and more', resource_id="-1+2")
    edge[2].update(user_agent="line\r\nbreak and a lone\rCR", resource_id="'quoted")
    edge[3].update(metadata={"n": '\u00e9\u4e2d\u0001\t"\\,', "deep": {"x": [None, True, 1.25]}})
    edge[4].update(user_agent="@SUM(A1)", resource_id="\tTAB")
    insert(fresh_db.sync_engine("admin"), edge)

    body, receipt = await run_export(scopes, world, AuditFilters(), "csv")
    assert body.endswith(b"\r\n") and body.count(b"\r\n") >= receipt.row_count + 1
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert tuple(rows[0]) == COLUMNS
    exported = {row[0]: row for row in rows[1:]}
    assert len(exported) == receipt.row_count > 2500
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        cursor = None
        read: list[dict[str, Any]] = []
        while True:
            page = await get_audit_logs(session, world.a.org_id, AuditFilters(limit=500), cursor)
            read += [r.to_json_dict() for r in page.items if str(r.id) in exported]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert len(read) == len(exported)
    json_at = [COLUMNS.index(name) for name in _JSON]
    for record in read:
        row: list[Any] = list(exported[record["id"]])
        for i in json_at:
            row[i] = json.loads(row[i]) if row[i] else None
        assert row == _expected_cells(record), record["id"]
    assert list(exported) == [r["id"] for r in read]  # newest first, like the read API


def test_presented_lines_keep_wide_integers_exact() -> None:
    """A line re-written to present erased values keeps every other value as it was: an
    integer wider than 64 bits too (orjson alone would turn it into a float)."""
    from carelog.audit.export_copy import csv_lines, jsonl_lines

    wide = 123456789012345678901234567890
    event = dict.fromkeys(COLUMNS)
    event.update(id="e1", action="X", metadata={"n": wide, "note": "[erased]"})
    line = json.dumps(event)
    [presented] = [json.loads(x) for x in jsonl_lines([(line, True)]).decode().splitlines()]
    assert presented["metadata"] == {"n": wide, "note": "[erased]"}
    cells = [f'"{c}"' if c else "" for c in ("e1",)]  # a CSV row: id, then empty cells
    row = ",".join(cells + [""] * (COLUMNS.index("metadata") - 1))
    row += ',"' + json.dumps({"n": wide, "k": "[erased]"}).replace('"', '""') + '"'
    row += "," * (len(COLUMNS) - COLUMNS.index("metadata") - 1) + "\r\n"
    [parsed] = list(csv.reader(io.StringIO(csv_lines([(row, True)]).decode(), newline="")))
    assert json.loads(parsed[COLUMNS.index("metadata")]) == {"n": wide, "k": "[erased]"}
