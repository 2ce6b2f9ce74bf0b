"""Events rendered as JSON by PostgreSQL: an export's lines and a page of the JSON API.

Reading an event into Python values only to write the same values back out as JSON was most
of the work of both: a JSONL export ran at a tenth of the raw ``COPY``'s pace, and an owner's
page of 50 events spent about a third of its CPU parsing rows, building records, validating
them twice (once into the response model, once more as the response) and serialising them.
Here the statement builds each event's JSON object (``json_build_object``, in column order,
JSON values embedded as stored so a decimal keeps its digits), and Python joins the objects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

import orjson
import sqlalchemy as sa

from carelog.audit.filters import AuditFilters, Cursor
from carelog.audit.query import COLUMNS, page_limit, select_events
from carelog.db.schema import AuditLog
from carelog.db.unit import DIALECT, Unit

_LOG = cast(sa.Table, AuditLog.__table__).c
#: How a time in UTC ends: ``datetime.isoformat()``'s offset (the exports), or the ``Z`` that
#: the API's response models have always written (pydantic's form).
ISOFORMAT, ZULU = "+00:00", "Z"


def iso_utc(column: sa.ColumnElement[Any], suffix: str = ISOFORMAT) -> sa.ColumnElement[str]:
    """The time in UTC as text, computed by PostgreSQL: seconds, six digits of microseconds
    unless there are none (what ``isoformat()`` and pydantic both do), then ``suffix``."""
    utc = sa.func.timezone(_text("UTC"), column)
    whole_second = sa.func.date_trunc(_text("second"), column) == column
    fraction = sa.case((whole_second, _text("")), else_=sa.func.to_char(utc, _text(".US")))
    return sa.func.to_char(utc, _text('YYYY-MM-DD"T"HH24:MI:SS')) + fraction + _text(suffix)


def _text(constant: str) -> sa.ColumnElement[str]:
    """A constant of the statement written into its text, not bound: nothing to send or bind
    per execution, and nothing that could make a generic plan differ from a custom one."""
    assert "'" not in constant  # only this module's own constants
    return sa.literal_column(f"'{constant}'", sa.Text)


def rendered_value(name: str, suffix: str = ISOFORMAT) -> sa.ColumnElement[Any]:
    """One column as an event's JSON shows it: the address as text, the time as above."""
    column = _LOG[name]
    if name == "ip_address":
        return sa.func.abbrev(column)
    if name == "created_at":
        return iso_utc(column, suffix)
    return column


def event_json(suffix: str = ISOFORMAT) -> sa.ColumnElement[str]:
    """Each event as one JSON object's text, its keys in column order."""
    pairs = (part for name in COLUMNS for part in (_text(name), rendered_value(name, suffix)))
    return sa.cast(sa.func.json_build_object(*pairs), sa.Text)


def _precompiled(expression: sa.ColumnElement[Any]) -> sa.ColumnElement[bytes]:
    """``expression`` (free of bound values) as its SQL text, compiled once at import.

    The page statement is built per request, and compiling it is keyed by SQLAlchemy's cache
    key, which walks every element: the 36 arguments of the event's ``json_build_object``
    were a tenth of an audit page's CPU. As literal text the whole column is one element."""
    sql = str(expression.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))
    assert "%" not in sql  # the driver's placeholder escaping would be applied twice
    return sa.literal_column(sql, sa.LargeBinary)


#: The event's JSON as UTF-8 bytes (``bytea``): the response is bytes, so decoding 50 events
#: into text only to encode them again is skipped.
_PAGE_EVENT = _precompiled(sa.func.convert_to(event_json(ZULU), _text("UTF8")))
_PAGE_COLUMNS = (_PAGE_EVENT.label("event"), _LOG.created_at, _LOG.id)


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A page as the JSON API answers it: ``{"items": [...], "next_cursor": ...}``."""

    events: list[bytes]
    next_cursor: str | None

    def to_json(self) -> bytes:
        items = b",".join(self.events)
        return b'{"items":[' + items + b'],"next_cursor":' + orjson.dumps(self.next_cursor) + b"}"


async def rendered_page(
    session: Unit, org_id: uuid.UUID, filters: AuditFilters, cursor: str | None = None
) -> RenderedPage:
    """:func:`carelog.audit.query.get_audit_logs`'s page (same statement, same keyset), each
    event rendered by PostgreSQL in the API's form; only the last row's position is read."""
    position = None if cursor is None else Cursor.decode(cursor, filters)
    stmt = select_events(org_id, filters, position, columns=_PAGE_COLUMNS)
    # Binary rows: the events' bytes as stored, the positions without text parsing.
    rows = (await session.execute(stmt.limit(page_limit(filters.limit + 1)), binary=True)).all()
    page = rows[: filters.limit]
    next_cursor = None
    if len(rows) > filters.limit:
        last = page[-1]
        next_cursor = Cursor(last.created_at, last.id).encode(filters)
    return RenderedPage([row.event for row in page], next_cursor)
