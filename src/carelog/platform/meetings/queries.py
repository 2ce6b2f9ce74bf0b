"""The SQL of meetings, in one place and read as SQL.

Why here and in this shape: a reviewer checks what a booking locks, counts and writes by
reading the statements themselves, not by reassembling them from the service's rules. Every
statement runs inside the caller's unit (a request's session or a system scope's), so
row-level security decides what it sees and may change; nothing here commits, opens a scope
or names an organization the session could not already reach.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from carelog.db.unit import Unit

#: The columns a meeting is answered with (``MeetingOut``).
_MEETING_OUT = "id, event_id, start_time, end_time, timezone, status, stripe_payment_status"

# Locks the expert's schedule row: bookings of one expert run one after the other, and the
# next one's overlap check (a fresh snapshot, READ COMMITTED) sees the previous meeting.
LOCK_SCHEDULE = sa.text(
    "select id, timezone from schedules where org_id = :org_id and workos_user_id = :expert_id"
    " for update"
)
AVAILABILITY = sa.text(
    "select day_of_week::text as d, start_time, end_time from schedule_availabilities"
    " where org_id = :org_id and schedule_id = :schedule_id"
)
SCHEDULING_SETTINGS = sa.text(
    "select before_event_buffer, after_event_buffer, minimum_notice,"
    " time_slot_interval, booking_window_days from scheduling_settings"
    " where org_id = :org_id and workos_user_id = :expert_id"
)
BLOCKED_DATES = sa.text(
    "select date, timezone from blocked_dates where org_id = :org_id"
    " and workos_user_id = :expert_id"
)
# Active bookings near the slot (a day either side covers every buffer); failed and refunded
# payments no longer hold their slot.
BOOKINGS_NEAR = sa.text(
    "select start_time, end_time from meetings where org_id = :org_id"
    " and workos_user_id = :expert_id"
    " and status = 'booked' and stripe_payment_status not in ('failed', 'refunded')"
    " and start_time < :until and end_time > :since"
)
# A slot held by an open checkout of ANOTHER guest (the same guest may retry their own).
HELD_FOR_ANOTHER_GUEST = sa.text(
    "select exists(select 1 from slot_reservations where org_id = :org_id"
    " and workos_user_id = :expert_id and expires_at > now() and start_time < :end"
    " and end_time > :start and guest_email <> :guest_email)"
)
ACTIVE_EVENT = sa.text(
    "select org_id, workos_user_id, duration_in_minutes, price from events"
    " where id = :event_id and is_active"
)
EVENT_DURATION = sa.text(
    "select duration_in_minutes from events where org_id = :org_id and id = :event_id"
    " and workos_user_id = :expert_id"
)
MEETING_OF_CHECKOUT = sa.text(
    f"select {_MEETING_OUT} from meetings where org_id = :org_id"
    " and stripe_session_id = :session_id"
)
# Free: nothing to pay, decided here and never by the client.
INSERT_FREE_MEETING = sa.text(
    "insert into meetings (org_id, event_id, workos_user_id, data_subject_id, guest_email,"
    " guest_name, guest_notes, start_time, end_time, timezone, stripe_payment_status,"
    " stripe_amount)"
    " values (:org_id, :event_id, :expert_id, :data_subject_id, :guest_email, :guest_name,"
    " :guest_notes, :start_time, :end_time, :timezone, 'succeeded', 0)"
    f" returning {_MEETING_OUT}"
)
# The payment fields come from the verified Stripe event, never from a client.
INSERT_PAID_MEETING = sa.text(
    "insert into meetings (org_id, event_id, workos_user_id, guest_workos_user_id,"
    " guest_org_id, data_subject_id, guest_email, guest_name, guest_notes, start_time,"
    " end_time, timezone, stripe_session_id, stripe_payment_intent_id,"
    " stripe_payment_status, stripe_amount, stripe_application_fee_amount)"
    " values (:org_id, :event_id, :expert_id, :guest_workos_user_id, :guest_org_id,"
    " :data_subject_id, :guest_email, :guest_name, :guest_notes, :start_time, :end_time,"
    " :timezone, :session_id, :payment_intent_id, :payment_status, :amount,"
    " :application_fee)"
    f" returning {_MEETING_OUT}"
)
RELEASE_RESERVATIONS = sa.text(
    "delete from slot_reservations where org_id = :org_id and (stripe_session_id = :session_id"
    " or stripe_payment_intent_id = :payment_intent_id)"
)
MEETING_TO_CANCEL = sa.text(
    "select id, org_id, workos_user_id, guest_workos_user_id, guest_org_id, event_id,"
    " status, coalesce(data_subject_id, guest_workos_user_id) as subject"
    " from meetings where id = :meeting_id"
)
CANCEL_BOOKED = sa.text(
    "update meetings set status = 'cancelled', cancelled_at = now()"
    f" where id = :meeting_id and status = 'booked' returning {_MEETING_OUT}"
)


async def lock_schedule(session: Unit, org_id: uuid.UUID, expert_id: str) -> Any:
    """The expert's schedule row (``id``, ``timezone``), locked; ``None``: no schedule."""
    result = await session.execute(LOCK_SCHEDULE, {"org_id": org_id, "expert_id": expert_id})
    return result.first()


async def availability(
    session: Unit, org_id: uuid.UUID, schedule_id: uuid.UUID
) -> list[tuple[str, dt.time, dt.time]]:
    """The schedule's weekly windows as (day, start, end) wall-clock times."""
    rows = await session.execute(AVAILABILITY, {"org_id": org_id, "schedule_id": schedule_id})
    return [(w.d, w.start_time, w.end_time) for w in rows]


async def scheduling_settings(session: Unit, org_id: uuid.UUID, expert_id: str) -> Any:
    """The expert's buffers, notice, interval and window; ``None``: the defaults apply."""
    result = await session.execute(SCHEDULING_SETTINGS, {"org_id": org_id, "expert_id": expert_id})
    return result.first()


async def blocked_dates(
    session: Unit, org_id: uuid.UUID, expert_id: str
) -> list[tuple[dt.date, str]]:
    rows = await session.execute(BLOCKED_DATES, {"org_id": org_id, "expert_id": expert_id})
    return [(r[0], r[1]) for r in rows]


async def bookings_near(
    session: Unit,
    org_id: uuid.UUID,
    expert_id: str,
    since: dt.datetime,
    until: dt.datetime,
) -> list[tuple[dt.datetime, dt.datetime]]:
    rows = await session.execute(
        BOOKINGS_NEAR,
        {"org_id": org_id, "expert_id": expert_id, "since": since, "until": until},
    )
    return [(r[0], r[1]) for r in rows]


async def held_for_another_guest(
    session: Unit,
    org_id: uuid.UUID,
    expert_id: str,
    start: dt.datetime,
    end: dt.datetime,
    guest_email: str,
) -> bool:
    held = await session.scalar(
        HELD_FOR_ANOTHER_GUEST,
        {
            "org_id": org_id,
            "expert_id": expert_id,
            "start": start,
            "end": end,
            "guest_email": guest_email,
        },
    )
    return bool(held)


async def active_event(session: Unit, event_id: uuid.UUID) -> Any:
    """The bookable event (``org_id``, expert, duration, price); ``None``: none active."""
    return (await session.execute(ACTIVE_EVENT, {"event_id": event_id})).first()


async def event_duration(
    session: Unit, org_id: uuid.UUID, event_id: uuid.UUID, expert_id: str
) -> Any:
    """The expert's event (``duration_in_minutes``); ``None``: not theirs or not there."""
    result = await session.execute(
        EVENT_DURATION, {"org_id": org_id, "event_id": event_id, "expert_id": expert_id}
    )
    return result.first()


async def meeting_of_checkout(
    session: Unit, org_id: uuid.UUID, session_id: str
) -> dict[str, Any] | None:
    """The meeting (as ``MeetingOut`` fields) a checkout session already became."""
    result = await session.execute(
        MEETING_OF_CHECKOUT, {"org_id": org_id, "session_id": session_id}
    )
    row = result.mappings().first()
    return None if row is None else dict(row)


async def _insert(
    session: Unit, statement: sa.TextClause, values: dict[str, Any]
) -> dict[str, Any]:
    # In a savepoint: a refused slot (the unique index) is a clean IntegrityError to the caller.
    async with session.begin_nested():
        return dict((await session.execute(statement, values)).mappings().one())


async def insert_free_meeting(session: Unit, values: dict[str, Any]) -> dict[str, Any]:
    """Run :data:`INSERT_FREE_MEETING` with these bind values; answers the new meeting."""
    return await _insert(session, INSERT_FREE_MEETING, values)


async def insert_paid_meeting(session: Unit, values: dict[str, Any]) -> dict[str, Any]:
    """Run :data:`INSERT_PAID_MEETING` with these bind values; answers the new meeting."""
    return await _insert(session, INSERT_PAID_MEETING, values)


async def release_reservations(
    session: Unit, org_id: uuid.UUID, session_id: str, payment_intent_id: str | None
) -> None:
    await session.execute(
        RELEASE_RESERVATIONS,
        {"org_id": org_id, "session_id": session_id, "payment_intent_id": payment_intent_id},
    )


async def meeting_to_cancel(session: Unit, meeting_id: uuid.UUID) -> Any:
    """Who hosts and who attends the meeting, its status and data subject; ``None``: unseen."""
    return (await session.execute(MEETING_TO_CANCEL, {"meeting_id": meeting_id})).first()


async def cancel_booked(session: Unit, meeting_id: uuid.UUID) -> dict[str, Any] | None:
    """Cancel the meeting if it is still booked (``None``: it was not, or RLS refused)."""
    row = (await session.execute(CANCEL_BOOKED, {"meeting_id": meeting_id})).mappings().first()
    return None if row is None else dict(row)
