"""Reading the audit log: filtered, newest first, one keyset page at a time.

Every query names ``org_id`` explicitly although RLS already limits the rows: the explicit
condition is what lets PostgreSQL walk the ``(org_id, created_at, id)`` primary key (and the
``(org_id, …, created_at)`` filter indexes) backwards and stop after one page, instead of
sorting the whole tenant. Pages are keyset-based, so page 10,000 costs what page 1 costs and
rows written meanwhile never shift a page.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from carelog.audit.filters import AuditFilters, Cursor
from carelog.db.schema import AuditLog
from carelog.db.unit import Row, Unit

_TABLE = cast(sa.Table, AuditLog.__table__)
_T = _TABLE.c
#: Bookkeeping of the sealer and streams (the inserting transaction id), not part of an event.
_INTERNAL = frozenset({"txid"})
_READ = tuple(c for c in _TABLE.columns if c.name not in _INTERNAL)
#: Every event column, in table order, under its column name ("metadata", not "metadata_").
COLUMNS: tuple[str, ...] = tuple(str(c.name) for c in _READ)  # plain str for orjson
#: The columns holding JSON documents (changes and metadata), from the table's types.
JSON_COLUMNS: frozenset[str] = frozenset(
    str(c.name) for c in _READ if isinstance(c.type, postgresql.JSONB)
)
#: What a read selects: the columns, with ``ip_address`` as PostgreSQL's own text of the inet
#: (``abbrev`` is the inet output function's text). The driver would parse every address into
#: an ``ipaddress`` object that ``AuditRecord`` turns straight back into that same string: in a
#: profile of the owner's audit page that round trip was a tenth of the request's CPU.
_SELECTED = tuple(
    sa.func.abbrev(c).label("ip_address") if c.name == "ip_address" else c for c in _READ
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event as read back (a plain value: no session, no lazy loading)."""

    id: uuid.UUID
    org_id: uuid.UUID
    workos_user_id: str
    actor_type: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    data_subject_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    metadata: dict[str, Any] | None
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime
    source: str
    schema_version: int

    @property
    def actor_id(self) -> str:
        return self.workos_user_id

    @classmethod
    def from_row(cls, row: Row) -> AuditRecord:
        values = dict(row._mapping)
        ip = values["ip_address"]
        values["ip_address"] = None if ip is None else str(ip)
        return cls(**values)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready values (ids and times as strings) in column order."""
        out: dict[str, Any] = {}
        for name in COLUMNS:
            value = getattr(self, name)
            if isinstance(value, uuid.UUID):
                value = str(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditRecord]
    next_cursor: str | None


def conditions(org_id: uuid.UUID, filters: AuditFilters) -> list[sa.ColumnElement[bool]]:
    """The WHERE clause of every read: the org, then each filter that is set (ANDed)."""
    where: list[sa.ColumnElement[bool]] = [_T.org_id == org_id]
    if filters.start is not None:
        where.append(_T.created_at >= filters.start)
    if filters.end is not None:
        where.append(_T.created_at < filters.end)
    if filters.actions:
        where.append(_in(_T.action, filters.actions))
    if filters.resource_types:
        where.append(_in(_T.resource_type, filters.resource_types))
    if filters.resource_id is not None:
        where.append(_T.resource_id == filters.resource_id)
    if filters.actor_id is not None:
        where.append(_T.workos_user_id == filters.actor_id)
    if filters.data_subject_id is not None:
        where.append(_T.data_subject_id == filters.data_subject_id)
    if filters.outcomes:
        where.append(_in(_T.outcome, filters.outcomes))
    return where


def _in(column: sa.ColumnElement[str], values: tuple[str, ...]) -> sa.ColumnElement[bool]:
    # One value as '=' lets the planner use the (org_id, column, created_at) index in order.
    return column == values[0] if len(values) == 1 else column.in_(values)


def after(cursor: Cursor) -> sa.ColumnElement[bool]:
    """Rows strictly older than the cursor in (created_at DESC, id DESC) order.

    The plain ``created_at <=`` bound is redundant with the row comparison but lets indexes
    that end in ``created_at`` (not ``created_at, id``) bound their scan too.
    """
    return sa.and_(
        _T.created_at <= cursor.created_at,
        sa.tuple_(_T.created_at, _T.id) < sa.tuple_(sa.literal(cursor.created_at), cursor.id),
    )


BATCH_SIZE = 1000


def page_limit(rows: int) -> sa.ColumnElement[int]:
    """A page's ``LIMIT`` written into the statement's text instead of bound.

    With a bound limit, PostgreSQL's generic plan for a prepared page query assumes a tenth of
    the table will be read, costs far more than a custom plan and is never chosen: every
    execution was planned again over all of the table's partitions (an owner's first page:
    1.0-1.2 ms of planning against 0.5 ms of execution, as the app role). With the number in
    the text the generic plan costs what a custom plan does and is kept after the first few
    executions (``pg_prepared_statements.generic_plans``; a test checks it). Each limit is its
    own statement, and limits are few (at most :data:`carelog.audit.filters.MAX_LIMIT`)."""
    return sa.literal_column(str(int(rows)), sa.Integer)


NEWEST_FIRST = (_T.created_at.desc(), _T.id.desc())


def select_events(
    org_id: uuid.UUID,
    filters: AuditFilters,
    cursor: Cursor | None = None,
    columns: tuple[sa.ColumnElement[Any], ...] = _SELECTED,
) -> sa.Select[Any]:
    """All matching events, newest first, from an optional position (no LIMIT); each as
    ``columns`` (every event column by default)."""
    where = conditions(org_id, filters)
    if cursor is not None:
        where.append(after(cursor))
    return sa.select(*columns).where(*where).order_by(*NEWEST_FIRST)


async def get_audit_logs(
    session: Unit,
    org_id: uuid.UUID,
    filters: AuditFilters,
    cursor: str | None = None,
) -> AuditPage:
    """One page of events, newest first; pass ``next_cursor`` back for the next page.

    Fetches ``limit + 1`` rows: the extra row only says whether another page exists, so the
    last page never returns a cursor to an empty page.
    """
    position = None if cursor is None else Cursor.decode(cursor, filters)
    stmt = select_events(org_id, filters, position).limit(page_limit(filters.limit + 1))
    rows = (await session.execute(stmt)).all()
    items = [AuditRecord.from_row(r) for r in rows[: filters.limit]]
    next_cursor = None
    if len(rows) > filters.limit:
        last = items[-1]
        next_cursor = Cursor(last.created_at, last.id).encode(filters)
    return AuditPage(items=items, next_cursor=next_cursor)


async def resource_trail(
    session: Unit,
    org_id: uuid.UUID,
    resource_type: str,
    resource_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Everything that happened to one resource (the type AND the id: ids are not unique
    across resource types, which the legacy platform ignored)."""
    filters = AuditFilters(
        resource_types=(resource_type,),
        resource_id=resource_id,
        start=start,
        end=end,
        limit=limit,
    )
    return await get_audit_logs(session, org_id, filters, cursor)


async def user_activity(
    session: Unit,
    org_id: uuid.UUID,
    actor_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Everything one actor did in the org, within the dates given (both are honoured)."""
    filters = AuditFilters(actor_id=actor_id, start=start, end=end, limit=limit)
    return await get_audit_logs(session, org_id, filters, cursor)


async def stream_records(
    session: Unit,
    org_id: uuid.UUID,
    filters: AuditFilters,
    batch_size: int = BATCH_SIZE,
) -> AsyncGenerator[list[AuditRecord], None]:
    """Matching events, newest first, in batches of at most ``batch_size`` (server-side)."""
    async for batch in session.stream(select_events(org_id, filters), batch_size):
        yield [AuditRecord.from_row(r) for r in batch]
