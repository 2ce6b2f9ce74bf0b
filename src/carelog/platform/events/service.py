"""Creating, changing, deleting and ordering event types. Services never commit.

Every statement names the owner (``workos_user_id = me``) and the organization, and RLS checks
the same again. Deleting an event that has meetings is refused up front with a clear 409; the
RESTRICT foreign key is the backstop for a meeting booked in between (the legacy platform cascaded
meetings, records and commissions away without a trace).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit import log_audit_event
from carelog.platform.common import mark_setup_step, require_expert
from carelog.platform.errors import ApiError, conflict, not_found
from carelog.platform.events.schemas import EventIn, EventOrderIn, EventOut, EventPatch

_COLUMNS = (
    'id, name, slug, description, duration_in_minutes, is_active, "order", price, currency,'
    " stripe_product_id, stripe_price_id"
)


def _out(row: Any) -> EventOut:
    return EventOut.model_validate(dict(row._mapping))


def _audit_values(event: EventOut) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"id"})


def _slug_taken(exc: IntegrityError) -> ApiError:
    if "slug" in str(exc.orig):
        return conflict("you already have an event with this slug", "SLUG_TAKEN", field="slug")
    raise exc


async def _owned(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, event_id: uuid.UUID
) -> EventOut:
    row = (
        await session.execute(
            sa.text(
                f"select {_COLUMNS} from events where id = :i and org_id = :o"
                " and workos_user_id = :u for update"
            ),
            {"i": event_id, "o": org_id, "u": user_id},
        )
    ).first()
    if row is None:
        raise not_found("event")
    return _out(row)


async def create_event(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, data: EventIn
) -> EventOut:
    await require_expert(session, user_id)
    values = data.model_dump()
    try:
        async with session.begin_nested():
            row = (
                await session.execute(
                    sa.text(
                        "insert into events (org_id, workos_user_id, name, slug, description,"
                        ' duration_in_minutes, is_active, "order", price, currency,'
                        " stripe_product_id, stripe_price_id)"
                        " values (:o, :u, :name, :slug, :description, :duration_in_minutes,"
                        ' :is_active, (select coalesce(max("order") + 1, 0) from events'
                        "   where org_id = :o and workos_user_id = :u),"
                        " :price, :currency, :stripe_product_id, :stripe_price_id)"
                        f" returning {_COLUMNS}"
                    ),
                    {"o": org_id, "u": user_id, **values},
                )
            ).one()
    except IntegrityError as exc:
        raise _slug_taken(exc) from None
    event = _out(row)
    if event.is_active:
        await mark_setup_step(session, org_id, user_id, "events")
    await log_audit_event(
        "EVENT_TYPE_CREATED", "event_type", event.id, {"new_values": _audit_values(event)}
    )
    return event


async def update_event(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, event_id: uuid.UUID, data: EventPatch
) -> EventOut:
    old = await _owned(session, org_id, user_id, event_id)
    changes = data.model_dump(exclude_unset=True)
    if not changes:
        return old
    sets = ", ".join(f'"{k}" = :{k}' for k in changes)
    try:
        async with session.begin_nested():
            row = (
                await session.execute(
                    sa.text(
                        f"update events set {sets} where id = :i and org_id = :o"
                        f" and workos_user_id = :u returning {_COLUMNS}"
                    ),
                    {"i": event_id, "o": org_id, "u": user_id, **changes},
                )
            ).one()
    except IntegrityError as exc:
        raise _slug_taken(exc) from None
    new = _out(row)
    if new.is_active:
        await mark_setup_step(session, org_id, user_id, "events")
    # log_audit_event keeps only the fields whose value changed.
    await log_audit_event(
        "EVENT_TYPE_UPDATED",
        "event_type",
        event_id,
        {"old_values": _audit_values(old), "new_values": _audit_values(new)},
    )
    return new


async def delete_event(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, event_id: uuid.UUID
) -> None:
    old = await _owned(session, org_id, user_id, event_id)
    meetings = await session.scalar(
        sa.text("select count(*) from meetings where org_id = :o and event_id = :i"),
        {"o": org_id, "i": event_id},
    )
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
            await session.execute(
                sa.text("delete from events where id = :i and org_id = :o and workos_user_id = :u"),
                {"i": event_id, "o": org_id, "u": user_id},
            )
    except IntegrityError:  # a meeting or hold appeared in between: RESTRICT decides
        raise refusal from None
    await log_audit_event(
        "EVENT_TYPE_DELETED", "event_type", event_id, {"old_values": _audit_values(old)}
    )


async def reorder_events(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, data: EventOrderIn
) -> list[EventOut]:
    rows = (
        await session.execute(
            sa.text(
                'select id, "order" from events where org_id = :o and workos_user_id = :u'
                " for update"
            ),
            {"o": org_id, "u": user_id},
        )
    ).all()
    old = {str(r.id): r.order for r in rows}
    unknown = [str(i) for i in data.event_ids if str(i) not in old]
    if unknown:
        raise not_found(f"event {unknown[0]}", field="event_ids")
    new = {str(i): pos for pos, i in enumerate(data.event_ids)}
    await session.execute(
        sa.text(
            'update events set "order" = :n where id = :i and org_id = :o and workos_user_id = :u'
        ),
        [{"n": n, "i": uuid.UUID(i), "o": org_id, "u": user_id} for i, n in new.items()],
    )
    await log_audit_event(
        "EVENT_TYPES_REORDERED",
        "event_type",
        None,
        {"old_values": {"order": {k: old[k] for k in new}}, "new_values": {"order": new}},
        {"event_ids": list(new)},
    )
    result = await session.execute(
        sa.text(
            f"select {_COLUMNS} from events where org_id = :o and workos_user_id = :u"
            ' order by "order", name'
        ),
        {"o": org_id, "u": user_id},
    )
    return [_out(r) for r in result]
