"""The SQL of event types, kept in one place so it can be read (and reviewed) as SQL.

Every statement runs on the session of the caller's unit, inside the request's transaction, so
row-level security decides once more what it can see or change; each statement still names the
owner (``workos_user_id``) and the organization itself, so a missing policy never widens it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from carelog.db.unit import Row, Unit

#: What an event type answers with (``EventOut``), for every select and ``returning``.
EVENT_COLUMNS = (
    'id, name, slug, description, duration_in_minutes, is_active, "order", price, currency,'
    " stripe_product_id, stripe_price_id"
)
#: The columns a PATCH may change (the fields of ``EventPatch``).
PATCHABLE = (
    "name",
    "slug",
    "description",
    "duration_in_minutes",
    "is_active",
    "price",
    "currency",
    "stripe_product_id",
    "stripe_price_id",
)

OWNED_EVENT_FOR_UPDATE = sa.text(
    f"select {EVENT_COLUMNS} from events where id = :event_id and org_id = :org_id"
    " and workos_user_id = :user_id for update"
)
# A new event type goes last among the owner's: one more than their highest "order".
INSERT_EVENT = sa.text(
    "insert into events (org_id, workos_user_id, name, slug, description,"
    ' duration_in_minutes, is_active, "order", price, currency,'
    " stripe_product_id, stripe_price_id)"
    " values (:org_id, :user_id, :name, :slug, :description, :duration_in_minutes,"
    ' :is_active, (select coalesce(max("order") + 1, 0) from events'
    "   where org_id = :org_id and workos_user_id = :user_id),"
    " :price, :currency, :stripe_product_id, :stripe_price_id)"
    f" returning {EVENT_COLUMNS}"
)
# Only the fields a PATCH sent change: a column keeps its stored value unless its
# ``set_<column>`` flag is true, so one statement covers every combination of sent fields (a
# column name cannot be a bind parameter) and ``null`` stays a value to write, not "unchanged".
UPDATE_EVENT = sa.text(
    "update events set"
    " name = case when :set_name then :name else name end,"
    " slug = case when :set_slug then :slug else slug end,"
    " description = case when :set_description then :description else description end,"
    " duration_in_minutes = case when :set_duration_in_minutes then :duration_in_minutes"
    "   else duration_in_minutes end,"
    " is_active = case when :set_is_active then :is_active else is_active end,"
    " price = case when :set_price then :price else price end,"
    " currency = case when :set_currency then :currency else currency end,"
    " stripe_product_id = case when :set_stripe_product_id then :stripe_product_id"
    "   else stripe_product_id end,"
    " stripe_price_id = case when :set_stripe_price_id then :stripe_price_id"
    "   else stripe_price_id end"
    " where id = :event_id and org_id = :org_id and workos_user_id = :user_id"
    f" returning {EVENT_COLUMNS}"
)
COUNT_EVENT_MEETINGS = sa.text(
    "select count(*) from meetings where org_id = :org_id and event_id = :event_id"
)
DELETE_EVENT = sa.text(
    "delete from events where id = :event_id and org_id = :org_id and workos_user_id = :user_id"
)
# Locks all of the owner's event types, so two reorders cannot interleave.
EVENT_ORDERS_FOR_UPDATE = sa.text(
    'select id, "order" from events where org_id = :org_id and workos_user_id = :user_id for update'
)
SET_EVENT_ORDER = sa.text(
    'update events set "order" = :order where id = :event_id and org_id = :org_id'
    " and workos_user_id = :user_id"
)
LIST_EVENTS = sa.text(
    f"select {EVENT_COLUMNS} from events where org_id = :org_id and workos_user_id = :user_id"
    ' order by "order", name'
)


async def owned_event_for_update(
    session: Unit, org_id: uuid.UUID, user_id: str, event_id: uuid.UUID
) -> Row | None:
    """The owner's event type, locked until the unit ends; ``None`` if not theirs."""
    result = await session.execute(
        OWNED_EVENT_FOR_UPDATE, {"event_id": event_id, "org_id": org_id, "user_id": user_id}
    )
    return result.first()


async def insert_event(
    session: Unit, org_id: uuid.UUID, user_id: str, values: Mapping[str, Any]
) -> Row:
    """``values`` holds every ``EventIn`` field."""
    result = await session.execute(INSERT_EVENT, {"org_id": org_id, "user_id": user_id, **values})
    return result.one()


async def update_event(
    session: Unit,
    org_id: uuid.UUID,
    user_id: str,
    event_id: uuid.UUID,
    changes: Mapping[str, Any],
) -> Row:
    """Write the ``changes`` (a subset of ``PATCHABLE``); every other column is kept."""
    unknown = set(changes) - set(PATCHABLE)
    if unknown:
        raise ValueError(sorted(unknown))
    params: dict[str, Any] = {"event_id": event_id, "org_id": org_id, "user_id": user_id}
    for column in PATCHABLE:
        params[f"set_{column}"] = column in changes
        params[column] = changes.get(column)
    result = await session.execute(UPDATE_EVENT, params)
    return result.one()


async def count_event_meetings(session: Unit, org_id: uuid.UUID, event_id: uuid.UUID) -> int:
    count = await session.scalar(COUNT_EVENT_MEETINGS, {"org_id": org_id, "event_id": event_id})
    return int(count or 0)


async def delete_event(session: Unit, org_id: uuid.UUID, user_id: str, event_id: uuid.UUID) -> None:
    await session.execute(
        DELETE_EVENT, {"event_id": event_id, "org_id": org_id, "user_id": user_id}
    )


async def event_orders_for_update(session: Unit, org_id: uuid.UUID, user_id: str) -> Sequence[Row]:
    """``(id, order)`` of all the owner's event types, locked until the unit ends."""
    result = await session.execute(EVENT_ORDERS_FOR_UPDATE, {"org_id": org_id, "user_id": user_id})
    return result.all()


async def set_event_orders(
    session: Unit, org_id: uuid.UUID, user_id: str, orders: Mapping[uuid.UUID, int]
) -> None:
    """One ``order`` per event id, sent as a single batch."""
    await session.execute(
        SET_EVENT_ORDER,
        [
            {"order": order, "event_id": event_id, "org_id": org_id, "user_id": user_id}
            for event_id, order in orders.items()
        ],
    )


async def list_events(session: Unit, org_id: uuid.UUID, user_id: str) -> Sequence[Row]:
    """The owner's event types in their display order."""
    result = await session.execute(LIST_EVENTS, {"org_id": org_id, "user_id": user_id})
    return result.all()
