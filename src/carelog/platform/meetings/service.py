"""Booking and cancelling meetings. Services never commit.

Why booking is safe under concurrency, in two layers:

1. The expert's ``schedules`` row is locked with ``SELECT ... FOR UPDATE`` before the slot is
   checked. Bookings of one expert therefore run one after the other: the second transaction
   waits, then (READ COMMITTED: each statement takes a fresh snapshot) sees the first one's
   meeting in its overlap check. That is what stops *overlapping but not equal* slots, which
   no unique index can express. Bookings of different experts never wait for each other.
2. The partial unique index ``uq_meetings_active_slot`` on (org_id, workos_user_id,
   start_time) of active meetings is the last word for *equal* slots, whatever path inserted
   them (a paid checkout, a future job): the unique violation becomes 409 SLOT_ALREADY_BOOKED.

Public booking is anonymous, so it runs as ``system:public-booking`` inside the event's own
organization (RLS keeps it there); the meetings table accepts inserts from the system role
only, and the insert never takes a payment status from the client.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from carelog.audit import log_audit_event
from carelog.db.session import Scopes
from carelog.db.unit import Unit
from carelog.platform.auth.dependencies import RequestUnit
from carelog.platform.common import system_audit
from carelog.platform.errors import ApiError, conflict, forbidden, not_found
from carelog.platform.meetings import queries
from carelog.platform.meetings.schemas import BookingIn, MeetingOut
from carelog.platform.meetings.slots import Rules, SlotRefusedError, check_slot
from carelog.platform.subjects.identity import subject_directory

PUBLIC_BOOKING_ACTOR = "system:public-booking"
SLOT_INDEX = "uq_meetings_active_slot"


def slot_taken() -> ApiError:
    return conflict(
        "this slot has just been booked by someone else",
        "SLOT_ALREADY_BOOKED",
        field="start_time",
        hint="pick another slot",
    )


def is_slot_violation(exc: IntegrityError) -> bool:
    return SLOT_INDEX in str(exc.orig)


@dataclass(frozen=True)
class PaidBooking:
    """What the checkout webhook knows (from Stripe, verified by the signature)."""

    event_id: uuid.UUID
    expert_id: str
    guest_email: str
    guest_name: str
    guest_notes: str | None
    start_time: dt.datetime
    timezone: str
    session_id: str
    payment_intent_id: str | None
    payment_status: str
    amount: int | None
    application_fee: int | None
    guest_workos_user_id: str | None = None
    guest_org_id: uuid.UUID | None = None


async def _lock_rules(session: Unit, org_id: uuid.UUID, expert: str) -> Rules | None:
    """Lock the expert's schedule row (serialises their bookings) and read the rules."""
    schedule = await queries.lock_schedule(session, org_id, expert)
    if schedule is None:
        return None
    windows = await queries.availability(session, org_id, schedule.id)
    settings = await queries.scheduling_settings(session, org_id, expert)
    extra: dict[str, int] = {}
    if settings is not None:
        extra = {
            "before_buffer": settings.before_event_buffer,
            "after_buffer": settings.after_event_buffer,
            "minimum_notice": settings.minimum_notice,
            "slot_interval": settings.time_slot_interval,
            "booking_window_days": settings.booking_window_days,
        }
    return Rules(timezone=schedule.timezone, windows=windows, **extra)


async def _check_against_bookings(
    session: Unit,
    org_id: uuid.UUID,
    expert: str,
    rules: Rules,
    start: dt.datetime,
    end: dt.datetime,
    guest_email: str,
) -> None:
    blocked = await queries.blocked_dates(session, org_id, expert)
    booked = await queries.bookings_near(
        session, org_id, expert, start - dt.timedelta(days=1), end + dt.timedelta(days=1)
    )
    now = dt.datetime.now(dt.UTC)
    try:
        check_slot(rules, start, end, now, blocked, booked)
    except SlotRefusedError as refused:
        if refused.taken:
            raise slot_taken() from None
        raise ApiError(
            refused.reason, status_code=422, code="INVALID_TIME_SLOT", field="start_time"
        ) from None
    if await queries.held_for_another_guest(session, org_id, expert, start, end, guest_email):
        raise conflict(
            "this slot is held for another guest during checkout",
            "SLOT_TEMPORARILY_RESERVED",
            field="start_time",
        )


async def _audit_created(
    meeting: MeetingOut,
    subject: str,
    channel: str,
    guest: dict[str, str | None],
    **meta: Any,
) -> None:
    # The guest's contact details and notes are personal fields of the catalog: the audit
    # core stores them sealed under the subject's data key (erasable), never in clear.
    await log_audit_event(
        "APPOINTMENT_CREATED",
        "appointment",
        meeting.id,
        {"new_values": {**meeting.model_dump(mode="json", exclude={"id"}), **guest}},
        {"event_id": str(meeting.event_id), "channel": channel, **meta},
        data_subject=subject,
    )


def _guest(email: str, name: str, notes: str | None) -> dict[str, str | None]:
    return {"guest_email": email, "guest_name": name, "guest_notes": notes}


async def check_bookable(
    session: Unit,
    org_id: uuid.UUID,
    expert: str,
    start: dt.datetime,
    end: dt.datetime,
    guest_email: str,
) -> None:
    """The slot checks every booking gets (422/409): a free one before its meeting is
    inserted, a paid one before it is sent to checkout."""
    rules = await _lock_rules(session, org_id, expert)
    if rules is None:
        raise ApiError(
            "the expert has no schedule yet",
            status_code=422,
            code="INVALID_TIME_SLOT",
            field="start_time",
        )
    await _check_against_bookings(session, org_id, expert, rules, start, end, guest_email)


async def book_free(scopes: Scopes, data: BookingIn) -> MeetingOut:
    """Public booking of a free event (paid events go through Stripe checkout)."""
    async with scopes.public_scope() as public:
        event = await queries.active_event(public, data.event_id)
    if event is None:
        raise not_found("event", field="event_id")
    if event.price > 0:
        raise conflict(
            "this event is paid and is booked through checkout",
            "PAYMENT_REQUIRED",
            field="event_id",
            hint="start a Stripe checkout for it instead",
        )
    start = data.start_time.astimezone(dt.UTC)
    end = start + dt.timedelta(minutes=event.duration_in_minutes)
    try:
        with system_audit(PUBLIC_BOOKING_ACTOR, event.org_id):
            async with scopes.system_scope(PUBLIC_BOOKING_ACTOR, event.org_id) as session:
                await check_bookable(
                    session, event.org_id, event.workos_user_id, start, end, data.guest_email
                )
                subject = await subject_directory().resolve(
                    session, event.org_id, data.guest_email, data.guest_name
                )
                # Free: the statement itself sets the payment status, never the client.
                row = await queries.insert_free_meeting(
                    session,
                    {
                        "org_id": event.org_id,
                        "event_id": data.event_id,
                        "expert_id": event.workos_user_id,
                        "data_subject_id": subject,
                        "guest_email": data.guest_email,
                        "guest_name": data.guest_name,
                        "guest_notes": data.guest_notes,
                        "start_time": start,
                        "end_time": end,
                        "timezone": data.timezone,
                    },
                )
                meeting = MeetingOut.model_validate(row)
                await _audit_created(
                    meeting,
                    subject,
                    "public_booking",
                    _guest(data.guest_email, data.guest_name, data.guest_notes),
                )
                return meeting
    except IntegrityError as exc:
        if is_slot_violation(exc):
            raise slot_taken() from None
        raise


async def create_paid(session: Unit, org_id: uuid.UUID, booking: PaidBooking) -> MeetingOut:
    """The meeting of a completed checkout (called by the Stripe webhook, inside its unit).

    Idempotent on the checkout session. The slot was validated when the checkout started and
    the guest has paid, so only the database constraint can refuse it now (409 to the caller,
    which decides what to do with the payment).
    """
    existing = await queries.meeting_of_checkout(session, org_id, booking.session_id)
    if existing is not None:
        return MeetingOut.model_validate(existing)
    event = await queries.event_duration(session, org_id, booking.event_id, booking.expert_id)
    if event is None:
        raise not_found("event", field="event_id")
    await _lock_rules(session, org_id, booking.expert_id)
    start = booking.start_time.astimezone(dt.UTC)
    subject = await subject_directory().resolve(
        session,
        org_id,
        booking.guest_email,
        booking.guest_name,
        workos_user_id=booking.guest_workos_user_id,
    )
    try:
        row = await queries.insert_paid_meeting(
            session,
            {
                "org_id": org_id,
                "event_id": booking.event_id,
                "expert_id": booking.expert_id,
                "guest_workos_user_id": booking.guest_workos_user_id,
                "guest_org_id": booking.guest_org_id,
                "data_subject_id": subject,
                "guest_email": booking.guest_email,
                "guest_name": booking.guest_name,
                "guest_notes": booking.guest_notes,
                "start_time": start,
                "end_time": start + dt.timedelta(minutes=event.duration_in_minutes),
                "timezone": booking.timezone,
                "session_id": booking.session_id,
                "payment_intent_id": booking.payment_intent_id,
                "payment_status": booking.payment_status,
                "amount": booking.amount,
                "application_fee": booking.application_fee,
            },
        )
    except IntegrityError as exc:
        if is_slot_violation(exc):
            raise slot_taken() from None
        raise
    meeting = MeetingOut.model_validate(row)
    await queries.release_reservations(
        session, org_id, booking.session_id, booking.payment_intent_id
    )
    await _audit_created(
        meeting,
        subject,
        "checkout",
        _guest(booking.guest_email, booking.guest_name, booking.guest_notes),
        stripe_session_id=booking.session_id,
    )
    return meeting


async def cancel(unit: RequestUnit, meeting_id: uuid.UUID) -> MeetingOut:
    """Host or guest cancels (RLS lets only them update; admins see but cannot cancel)."""
    me = unit.identity
    row = await queries.meeting_to_cancel(unit.session, meeting_id)
    if row is None:
        raise not_found("meeting")
    host = row.workos_user_id == me.user_id and row.org_id == me.org_id
    guest = row.guest_workos_user_id == me.user_id and row.guest_org_id == me.org_id
    if not (host or guest):
        raise forbidden("only the expert or the guest of this meeting can cancel it")
    updated = await queries.cancel_booked(unit.session, meeting_id)
    if updated is None:
        raise conflict(f"this meeting is {row.status}, not booked", "MEETING_NOT_BOOKED")
    meeting = MeetingOut.model_validate(updated)
    await log_audit_event(
        "APPOINTMENT_CANCELLED",
        "appointment",
        meeting.id,
        {"old_values": {"status": row.status}, "new_values": {"status": "cancelled"}},
        {
            "event_id": str(row.event_id),
            "cancelled_by": "host" if host else "guest",
            "meeting_org_id": str(row.org_id),
        },
        data_subject=row.subject,
        owner_org=row.org_id,
    )
    return meeting
