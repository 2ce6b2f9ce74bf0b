"""One definition of the audit row: the ``audit_logs`` table (``carelog.db.schema.AuditLog``).

Every other spelling of the row is derived from it or checked here against it, in the same
order, so a column added to the table without the writer, the read model, the API schema or
the (versioned, deliberately explicit) integrity field list fails this test instead of
silently dropping data.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from carelog.audit.events import AuditEvent
from carelog.audit.integrity.rows import EVENT_FIELDS, EXCLUDED_COLUMNS
from carelog.audit.query import COLUMNS as READ_COLUMNS
from carelog.audit.query import AuditRecord
from carelog.audit.wire import COLUMNS as WRITER_COLUMNS
from carelog.audit.wire import wire_of
from carelog.db.schema import AuditLog
from carelog.platform.audit_api.schemas import AuditEventOut

TABLE = cast(sa.Table, AuditLog.__table__)
#: Kept by the database itself (the transaction id the sealer's horizon reads), never written.
DATABASE_ONLY = ("txid",)
EVENT_COLUMNS = tuple(c.name for c in TABLE.columns if c.name not in DATABASE_ONLY)


def test_the_writer_inserts_every_column_with_the_table_type() -> None:
    assert tuple(name for name, _ in WRITER_COLUMNS) == EVENT_COLUMNS
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    aliases = {"UUID": "uuid", "TEXT": "text", "JSONB": "jsonb", "INET": "inet"}
    aliases |= {"TIMESTAMP WITH TIME ZONE": "timestamptz", "SMALLINT": "int2"}
    for name, kind in WRITER_COLUMNS:
        compiled = TABLE.c[name].type.compile(dialect=dialect)
        assert aliases.get(compiled, compiled) == kind, name


def test_the_read_model_and_the_api_schema_are_the_table() -> None:
    assert READ_COLUMNS == EVENT_COLUMNS
    assert tuple(f.name for f in dataclasses.fields(AuditRecord)) == EVENT_COLUMNS
    assert tuple(AuditEventOut.model_fields) == EVENT_COLUMNS


def test_the_integrity_format_covers_the_table_exactly() -> None:
    # The canonical field list is a file format (explicit, versioned), checked against the table.
    assert EVENT_FIELDS == EVENT_COLUMNS
    assert EXCLUDED_COLUMNS == DATABASE_ONLY


def test_an_event_writes_every_column() -> None:
    """What is stored is the wire body (every path inserts it): the table's columns, in order."""
    fields = {f for f in AuditEvent.__slots__ if not f.startswith("_")}  # type: ignore[attr-defined]
    assert set(EVENT_COLUMNS) <= fields
    event = AuditEvent.__new__(AuditEvent)
    for name in fields:
        object.__setattr__(event, name, None)
    object.__setattr__(event, "id", uuid.uuid4())
    object.__setattr__(event, "created_at", datetime.now(UTC))
    assert tuple(orjson.loads(wire_of(event))) == EVENT_COLUMNS
