"""Reading an organization's audit trail, for the JSON API and the viewer alike.

Both surfaces take the request's :class:`~carelog.platform.auth.dependencies.RequestUnit`
(an owner or admin's org-scoped unit of work) and go through these functions, so the keyset
queries, the "reading is itself audited" rule and the integrity look-ups exist once. ``via``
names the surface in the recorded metadata (the API records none).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from carelog.audit import trail_reads
from carelog.audit.filters import AuditFilters, Cursor
from carelog.audit.query import AuditPage, AuditRecord, get_audit_logs
from carelog.audit.rendered import RenderedPage, rendered_page
from carelog.platform.audit_api import queries
from carelog.platform.auth.dependencies import RequestUnit
from carelog.platform.errors import ApiError


def _no_such(what: str) -> ApiError:
    return ApiError(f"no such {what} in this organization", status_code=404, code="NOT_FOUND")


@dataclass
class Page:
    """One keyset page and the cursors on either side of it."""

    items: list[AuditRecord]
    older: str | None = None  # cursor of the next (older) page
    newer: str | None = None  # "before" cursor of the previous (newer) page


async def search(
    unit: RequestUnit, filters: AuditFilters, cursor: str | None = None
) -> RenderedPage:
    """One page, newest first, as the JSON API answers it (recorded as ``AUDIT_LOG_QUERIED``):
    rendered by PostgreSQL, so no event is parsed into Python values only to be written out
    again."""
    page = await rendered_page(unit.session, unit.identity.org_id, filters, cursor)
    await trail_reads.record_page_read(filters, len(page.events), paged=bool(cursor))
    return page


async def _newer_page(
    unit: RequestUnit, filters: AuditFilters, before: Cursor
) -> tuple[list[AuditRecord], bool]:
    """The page just newer than ``before`` (ascending keyset scan, then reversed), and whether
    there are newer events still."""
    rows = await queries.events_newer_than(unit.session, unit.identity.org_id, filters, before)
    items = [AuditRecord.from_row(r) for r in rows[: filters.limit]]
    items.reverse()
    return items, len(rows) > filters.limit


async def browse(
    unit: RequestUnit,
    filters: AuditFilters,
    cursor: str | None,
    before: str | None,
    *,
    via: str | None = None,
) -> Page:
    """A page that can be walked both ways (older with ``cursor``, newer with ``before``)."""
    page = await _load(unit, filters, cursor, before)
    await trail_reads.record_page_read(
        filters, len(page.items), paged=bool(cursor or before), via=via
    )
    return page


async def _load(
    unit: RequestUnit, filters: AuditFilters, cursor: str | None, before: str | None
) -> Page:
    org = unit.identity.org_id
    if before and not cursor:
        items, more = await _newer_page(unit, filters, Cursor.decode(before, filters))
        if more and items:
            return Page(
                items,
                older=Cursor(items[-1].created_at, items[-1].id).encode(filters),
                newer=Cursor(items[0].created_at, items[0].id).encode(filters),
            )
        cursor = None  # the newest page: read it as such (events may have arrived meanwhile)
    page = await get_audit_logs(unit.session, org, filters, cursor)
    newer = None
    if cursor:
        first = page.items[0] if page.items else None
        newer = "" if first is None else Cursor(first.created_at, first.id).encode(filters)
    return Page(page.items, older=page.next_cursor, newer=newer)


async def event(unit: RequestUnit, event_id: str, *, via: str | None = None) -> AuditRecord:
    """One event of the organization (404 for a malformed, absent or foreign id)."""
    try:
        wanted = uuid.UUID(event_id)
    except ValueError:
        raise _no_such("event") from None
    row = await queries.event_row(unit.session, unit.identity.org_id, wanted)
    if row is None:
        raise _no_such("event")
    found = AuditRecord.from_row(row)
    await trail_reads.record_event_read(found.id, via=via)
    return found


async def subject_accesses(
    unit: RequestUnit, subject_id: str, cursor: str | None, limit: int, *, via: str | None = None
) -> AuditPage:
    """Who accessed one data subject's records, newest first (a recorded access report)."""
    filters = AuditFilters(data_subject_id=subject_id, limit=limit)
    page = await get_audit_logs(unit.session, unit.identity.org_id, filters, cursor)
    await trail_reads.record_access_report(subject_id, len(page.items), via=via)
    return page


async def org_name(unit: RequestUnit) -> str:
    name = await queries.org_name(unit.session, unit.identity.org_id)
    return name if name is not None else str(unit.identity.org_id)


async def last_checkpoint(unit: RequestUnit) -> dict[str, Any] | None:
    """The newest signed checkpoint (one index lookup); raises if the tables are unreadable."""
    async with unit.session.begin_nested():
        row = await queries.last_checkpoint(unit.session, unit.identity.org_id)
    return None if row is None else {"tree_size": int(row[0]), "issued_at": row[1]}
