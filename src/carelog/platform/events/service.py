"""Creating, changing, deleting and ordering event types. Services never commit.

Every statement names the owner (``workos_user_id = me``) and the organization, and RLS checks
the same again. Deleting an event that has meetings is refused up front with a clear 409; the
RESTRICT foreign key is the backstop for a meeting booked in between (the legacy platform cascaded
meetings, records and commissions away without a trace).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from carelog.audit import log_audit_event
from carelog.platform.auth.dependencies import RequestUnit
from carelog.platform.common import mark_setup_step, require_expert
from carelog.platform.errors import ApiError, conflict, not_found
from carelog.platform.events import queries
from carelog.platform.events.schemas import EventIn, EventOrderIn, EventOut, EventPatch


def _out(row: Any) -> EventOut:
    return EventOut.model_validate(dict(row._mapping))


def _audit_values(event: EventOut) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"id"})


def _slug_taken(exc: IntegrityError) -> ApiError:
    if "slug" in str(exc.orig):
        return conflict("you already have an event with this slug", "SLUG_TAKEN", field="slug")
    raise exc


async def _owned(unit: RequestUnit, event_id: uuid.UUID) -> EventOut:
    me = unit.identity
    row = await queries.owned_event_for_update(unit.session, me.org_id, me.user_id, event_id)
    if row is None:
        raise not_found("event")
    return _out(row)


async def create_event(unit: RequestUnit, data: EventIn) -> EventOut:
    session, me = unit.session, unit.identity
    await require_expert(session, me.user_id)
    try:
        async with session.begin_nested():
            row = await queries.insert_event(session, me.org_id, me.user_id, data.model_dump())
    except IntegrityError as exc:
        raise _slug_taken(exc) from None
    event = _out(row)
    if event.is_active:
        await mark_setup_step(session, me.org_id, me.user_id, "events")
    await log_audit_event(
        "EVENT_TYPE_CREATED", "event_type", event.id, {"new_values": _audit_values(event)}
    )
    return event


async def update_event(unit: RequestUnit, event_id: uuid.UUID, data: EventPatch) -> EventOut:
    session, me = unit.session, unit.identity
    old = await _owned(unit, event_id)
    changes = data.model_dump(exclude_unset=True)
    if not changes:
        return old
    try:
        async with session.begin_nested():
            row = await queries.update_event(session, me.org_id, me.user_id, event_id, changes)
    except IntegrityError as exc:
        raise _slug_taken(exc) from None
    new = _out(row)
    if new.is_active:
        await mark_setup_step(session, me.org_id, me.user_id, "events")
    # log_audit_event keeps only the fields whose value changed.
    await log_audit_event(
        "EVENT_TYPE_UPDATED",
        "event_type",
        event_id,
        {"old_values": _audit_values(old), "new_values": _audit_values(new)},
    )
    return new


async def delete_event(unit: RequestUnit, event_id: uuid.UUID) -> None:
    session, me = unit.session, unit.identity
    old = await _owned(unit, event_id)
    meetings = await queries.count_event_meetings(session, me.org_id, event_id)
    refusal = conflict(
        "this event has meetings and cannot be deleted",
        "EVENT_HAS_MEETINGS",
        field="id",
        hint="deactivate it instead (PATCH is_active=false): booking history is kept",
    )
    if meetings:
        raise refusal
    try:
        async with session.begin_nested():
            await queries.delete_event(session, me.org_id, me.user_id, event_id)
    except IntegrityError:  # a meeting or hold appeared in between: RESTRICT decides
        raise refusal from None
    await log_audit_event(
        "EVENT_TYPE_DELETED", "event_type", event_id, {"old_values": _audit_values(old)}
    )


async def reorder_events(unit: RequestUnit, data: EventOrderIn) -> list[EventOut]:
    session, me = unit.session, unit.identity
    rows = await queries.event_orders_for_update(session, me.org_id, me.user_id)
    old = {str(r.id): r.order for r in rows}
    unknown = [str(i) for i in data.event_ids if str(i) not in old]
    if unknown:
        raise not_found(f"event {unknown[0]}", field="event_ids")
    new = {str(i): pos for pos, i in enumerate(data.event_ids)}
    await queries.set_event_orders(
        session, me.org_id, me.user_id, {uuid.UUID(i): n for i, n in new.items()}
    )
    await log_audit_event(
        "EVENT_TYPES_REORDERED",
        "event_type",
        None,
        {"old_values": {"order": {k: old[k] for k in new}}, "new_values": {"order": new}},
        {"event_ids": list(new)},
    )
    return [_out(r) for r in await queries.list_events(session, me.org_id, me.user_id)]
