"""The SQL behind the audit API and the viewer, in one place.

Every statement runs in the caller's unit (an owner or admin's org-scoped transaction), so RLS
decides what it sees, on top of the explicit ``org_id`` each one names. The event reads extend
the audit core's own keyset query (:func:`carelog.audit.query.select_events`) rather than
restating it, so the filters and the column list exist once; the rest is plain SQL.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import sqlalchemy as sa

from carelog.audit.filters import AuditFilters, Cursor
from carelog.audit.query import page_limit, select_events
from carelog.db.schema import AuditLog
from carelog.db.unit import Row, Unit

_T = cast(sa.Table, AuditLog.__table__).c

ORG_NAME = sa.text("select name from organizations where id = :org_id")
LAST_CHECKPOINT = sa.text(
    "SELECT tree_size, issued_at FROM audit_checkpoints WHERE org_id = :org_id "
    "ORDER BY tree_size DESC LIMIT 1"
)


async def org_name(session: Unit, org_id: uuid.UUID) -> str | None:
    name = await session.scalar(ORG_NAME, {"org_id": org_id})
    return None if name is None else str(name)


async def last_checkpoint(session: Unit, org_id: uuid.UUID) -> tuple[Any, ...] | None:
    """(tree_size, issued_at) of the newest signed checkpoint: one index lookup."""
    row = (await session.execute(LAST_CHECKPOINT, {"org_id": org_id})).first()
    return None if row is None else tuple(row)


async def events_newer_than(
    session: Unit, org_id: uuid.UUID, filters: AuditFilters, before: Cursor
) -> list[Row]:
    """Up to ``limit + 1`` matching events just newer than ``before``, oldest first (an
    ascending keyset scan; the caller reverses the page)."""
    position = sa.tuple_(_T.created_at, _T.id) > sa.tuple_(sa.literal(before.created_at), before.id)
    stmt = (
        select_events(org_id, filters)
        .where(_T.created_at >= before.created_at, position)
        .order_by(None)
        .order_by(_T.created_at.asc(), _T.id.asc())
        .limit(page_limit(filters.limit + 1))
    )
    return list((await session.execute(stmt)).all())


async def event_row(session: Unit, org_id: uuid.UUID, event_id: uuid.UUID) -> Row | None:
    """One event of the organization, with the columns of every other event read."""
    stmt = select_events(org_id, AuditFilters()).where(_T.id == event_id).limit(page_limit(1))
    row: Row | None = (await session.execute(stmt)).first()
    return row
