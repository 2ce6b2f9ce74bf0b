"""Seeding building blocks: find-or-insert one row (and its audit event), the bookings.

Split from ``carelog.platform.demo`` (which seeds organizations and people) so each module
stays small; the design notes live in that module's docstring.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from carelog.audit import log_audit_event
from carelog.core.errors import CarelogError
from carelog.db.schema import Base, Event, Meeting, Record
from carelog.db.unit import Unit
from carelog.platform.demo_plan import (
    _EVENT_SHAPES,
    LISBON,
    TIMEZONE,
    ClinicPlan,
    EventKind,
    MeetingPlan,
    Person,
    meeting_id,
    record_id,
)
from carelog.platform.records.crypto import ENCRYPTION_METHOD, RecordKeyring

ModelT = TypeVar("ModelT", bound=Base)

ACTOR = "system:demo-seed"
#: The event each seeded row emits (table -> action, resource type): the seed is a write path
#: like any other, so a fresh demo opens on a trail that already says who created what.
SEED_EVENTS: dict[str, tuple[str, str]] = {
    "organizations": ("DEMO_DATA_SEEDED", "organization"),
    "users": ("DEMO_DATA_SEEDED", "user"),
    "roles": ("DEMO_DATA_SEEDED", "user"),
    "user_org_memberships": ("ORG_MEMBER_INVITED", "organization"),
    "expert_setup": ("DEMO_DATA_SEEDED", "profile"),
    "profiles": ("PROFILE_CREATED", "profile"),
    "events": ("EVENT_TYPE_CREATED", "event_type"),
    "schedules": ("SCHEDULE_UPDATED", "schedule"),
    "schedule_availabilities": ("SCHEDULE_UPDATED", "schedule"),
    "scheduling_settings": ("SCHEDULE_UPDATED", "schedule"),
    "meetings": ("APPOINTMENT_CREATED", "appointment"),
    "records": ("MEDICAL_RECORD_CREATED", "medical_record"),
}


@dataclass
class _Tally:
    created: int = 0


async def _ensure(
    session: Unit,
    tally: _Tally,
    model: type[ModelT],
    key: Mapping[str, object],
    **values: object,
) -> ModelT:
    """Find the row by ``key`` or insert it with ``values`` (inserted at once, so FKs hold).

    The row comes back as a named tuple of the table's columns, typed as the model for the
    callers, which read its columns by name."""
    table = cast(sa.Table, model.__table__)
    found = (await session.execute(sa.select(table).filter_by(**key))).first()
    if found is not None:
        return cast(ModelT, found)
    try:
        insert = sa.insert(table).values(**key, **values).returning(*table.c)
        row = (await session.execute(insert)).one()
    except IntegrityError as exc:
        raise CarelogError(
            f"cannot create demo {model.__tablename__} row {dict(key)!r}: a conflicting row "
            "exists that the demo did not create",
            hint="seed the demo into a database without clashing demo slugs or user ids",
        ) from exc
    tally.created += 1
    table = model.__tablename__
    action, resource_type = SEED_EVENTS.get(table, ("DEMO_DATA_SEEDED", "organization"))
    ident = next((getattr(row, c, None) for c in ("id", "workos_user_id") if hasattr(row, c)), None)
    await log_audit_event(
        action,
        resource_type,
        None if ident is None else str(ident),
        None,
        {"seed": "demo", "table": table},
        data_subject=getattr(row, "guest_workos_user_id", None),
    )
    return cast(ModelT, row)


async def _seed_meetings(
    session: Unit,
    tally: _Tally,
    keyring: RecordKeyring,
    clinic: ClinicPlan,
    org_id: uuid.UUID,
    events: Mapping[tuple[str, EventKind], Event],
    personal_orgs: Mapping[str, uuid.UUID],
    today: date,
) -> tuple[tuple[uuid.UUID, ...], tuple[uuid.UUID, ...]]:
    """Bookings of the clinic's patients; a past booking also gets its encrypted note."""
    patients = {p.key: p for p in clinic.patients}
    meeting_ids: list[uuid.UUID] = []
    record_ids: list[uuid.UUID] = []
    for index, plan in enumerate(clinic.meetings):
        patient = patients[plan.patient]
        event = events[(plan.expert, plan.kind)]
        meeting = await _ensure_meeting(
            session,
            tally,
            meeting_id(clinic, index),
            org_id,
            event,
            plan,
            patient,
            personal_orgs[patient.key],
            today,
        )
        meeting_ids.append(meeting.id)
        if plan.note is not None:
            record = await _ensure_record(
                session, tally, keyring, record_id(clinic, index), meeting, plan.note
            )
            record_ids.append(record.id)
    return tuple(meeting_ids), tuple(record_ids)


async def _ensure_meeting(
    session: Unit,
    tally: _Tally,
    id_: uuid.UUID,
    org_id: uuid.UUID,
    event: Event,
    plan: MeetingPlan,
    patient: Person,
    patient_org_id: uuid.UUID,
    today: date,
) -> Meeting:
    start = datetime.combine(_business_day(today, plan.business_day), time(plan.hour), LISBON)
    paid = event.price > 0
    return await _ensure(
        session,
        tally,
        Meeting,
        {"id": id_},
        org_id=org_id,
        event_id=event.id,
        workos_user_id=event.workos_user_id,
        guest_workos_user_id=patient.workos_user_id,
        guest_org_id=patient_org_id,
        guest_email=patient.email,
        guest_name=patient.name,
        start_time=start,
        end_time=start + timedelta(minutes=event.duration_in_minutes),
        timezone=TIMEZONE,
        status="completed" if plan.business_day < 0 else "booked",
        stripe_payment_status="succeeded",
        stripe_amount=event.price if paid else None,
    )


async def _ensure_record(
    session: Unit,
    tally: _Tally,
    keyring: RecordKeyring,
    id_: uuid.UUID,
    meeting: Meeting,
    note: str,
) -> Record:
    """The note is sealed to (record, meeting, org); no guest_email is stored."""
    records = cast(sa.Table, Record.__table__)
    existing = (await session.execute(sa.select(records).filter_by(id=id_))).first()
    if existing is not None:  # do not re-encrypt: the first run's ciphertext stays
        return cast(Record, existing)
    sealed = keyring.encrypt(note, record_id=id_, meeting_id=meeting.id, org_id=meeting.org_id)
    return await _ensure(
        session,
        tally,
        Record,
        {"id": id_},
        org_id=meeting.org_id,
        meeting_id=meeting.id,
        expert_id=meeting.workos_user_id,
        guest_email=None,
        vault_encrypted_content=sealed.blob,
        encryption_method=ENCRYPTION_METHOD,
        key_id=sealed.key_id,
    )


def _business_day(today: date, offset: int) -> date:
    """The ``offset``-th weekday after (or before, when negative) ``today``."""
    day, step, remaining = today, (1 if offset >= 0 else -1), abs(offset)
    while remaining or day.weekday() >= 5:
        day += timedelta(days=step)
        if day.weekday() < 5:
            remaining = max(remaining - 1, 0)
    return day


def _check_no_double_booking(clinic: ClinicPlan) -> None:
    """Distinct non-zero business-day offsets are distinct dates: (expert, day, hour) is unique."""
    slots = [(m.expert, m.business_day, m.hour) for m in clinic.meetings]
    if len(slots) != len(set(slots)):
        raise CarelogError(f"demo plan for {clinic.slug} books an expert twice at the same time")
    for m in clinic.meetings:
        minutes = _EVENT_SHAPES[m.kind][1]
        if not (m.hour >= 9 and m.hour * 60 + minutes <= 17 * 60):
            raise CarelogError(f"demo meeting at {m.hour}:00 is outside availability")
