"""Demo data: two clinics with owners, experts, patients, bookings and encrypted records.

Why it is built this way:

* It writes through ``system_scope('system:demo-seed', org_id)`` only, the same least-privileged
  role a webhook uses, so the demo proves the row-level security rather than bypassing it.
  That role sees an organization only when its id is the scope's org id, so the id must be
  known *before* the organization exists: every id here is a UUIDv5 derived from the
  organization slug and a stable name. That is also what makes seeding idempotent — a
  second run finds each row by its natural key (or its derived id), creates nothing and
  reports the same ids. (A random uuid4 would work for the first run, but the next run could
  not find the organization again through the system role.)
* One unit of work per organization: a patient's personal organization, then the clinic with
  everything in it. A failure rolls back that organization only, and re-running completes it.
* Meeting times are relative to the day of the first seed (weekdays, 09:00-17:00 Lisbon, inside
  the experts' availability). Re-running on a later day keeps the existing meetings instead of
  adding new ones. Meetings on earlier days are ``completed`` and carry one encrypted clinical
  note each; upcoming ones are ``booked``. No expert has two meetings at the same start time.
* Records never store ``guest_email`` (the legacy platform kept the patient's e-mail in clear
  next to the ciphertext); their content is sealed with the :class:`RecordKeyring`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime, time

from carelog.audit import audit_context
from carelog.db.schema import (
    Event,
    ExpertSetup,
    Organization,
    Profile,
    Role,
    Schedule,
    ScheduleAvailability,
    SchedulingSettings,
    User,
    UserOrgMembership,
)
from carelog.db.session import Scopes
from carelog.db.unit import Unit
from carelog.platform.demo_plan import (
    _EVENT_SHAPES,
    _WEEKDAYS,
    CLINICS,
    LISBON,
    TIMEZONE,
    ClinicPlan,
    DemoEvent,
    DemoOrg,
    DemoSummary,
    DemoUser,
    EventKind,
    Person,
    PersonRole,
    demo_uuid,
    planned_notes,
    workos_org_id,
)
from carelog.platform.demo_rows import (
    ACTOR,
    _check_no_double_booking,
    _ensure,
    _seed_meetings,
    _Tally,
)
from carelog.platform.records.crypto import RecordKeyring

# ---------------------------------------------------------------------------- seeding


async def seed_demo(scopes: Scopes, keyring: RecordKeyring) -> DemoSummary:
    """Create the demo clinics if missing; always return the same ids."""
    today = datetime.now(LISBON).date()
    tally = _Tally()
    orgs = []
    for clinic in CLINICS:
        _check_no_double_booking(clinic)
        personal = {p.key: await _seed_patient(scopes, tally, p) for p in clinic.patients}
        orgs.append(await _seed_clinic(scopes, tally, keyring, clinic, personal, today))
    return DemoSummary(orgs=tuple(orgs), created_rows=tally.created)


async def _ensure_org(
    session: Unit, tally: _Tally, org_id: uuid.UUID, slug: str, name: str, kind: str
) -> Organization:
    return await _ensure(
        session,
        tally,
        Organization,
        {"id": org_id},
        workos_org_id=workos_org_id(slug),
        slug=slug,
        name=name,
        type=kind,
    )


async def _ensure_user(session: Unit, tally: _Tally, person: Person) -> User:
    """The user mirror row plus one roles row for its application role (global tables)."""
    user = await _ensure(
        session,
        tally,
        User,
        {"workos_user_id": person.workos_user_id},
        email=person.email,
        username=person.key.replace("_", "-"),
        role=person.app_role,
        country="PT",
    )
    await _ensure(
        session, tally, Role, {"workos_user_id": person.workos_user_id, "role": person.app_role}
    )
    return user


async def _ensure_membership(
    session: Unit, tally: _Tally, org_id: uuid.UUID, person: Person, role: str
) -> None:
    await _ensure(
        session,
        tally,
        UserOrgMembership,
        {"org_id": org_id, "workos_user_id": person.workos_user_id},
        role=role,
        status="active",
    )


async def _seed_patient(scopes: Scopes, tally: _Tally, patient: Person) -> uuid.UUID:
    """A patient owns a personal organization; their bookings point at it as guest_org_id."""
    org_id = demo_uuid(patient.personal_slug, "org")
    with audit_context(actor_id=ACTOR, org_id=org_id):
        return await _seed_patient_org(scopes, tally, patient, org_id)


async def _seed_patient_org(
    scopes: Scopes, tally: _Tally, patient: Person, org_id: uuid.UUID
) -> uuid.UUID:
    async with scopes.system_scope(ACTOR, org_id) as session:
        await _ensure_org(
            session, tally, org_id, patient.personal_slug, patient.name, "patient_personal"
        )
        await _ensure_user(session, tally, patient)
        await _ensure_membership(session, tally, org_id, patient, "owner")
    return org_id


async def _seed_clinic(
    scopes: Scopes,
    tally: _Tally,
    keyring: RecordKeyring,
    clinic: ClinicPlan,
    personal_orgs: Mapping[str, uuid.UUID],
    today: date,
) -> DemoOrg:
    """The clinic, its owner and experts (with everything they need to take bookings),
    the bookings, and the notes of past bookings, in one unit of work."""
    org_id = demo_uuid(clinic.slug, "org")
    with audit_context(actor_id=ACTOR, org_id=org_id):
        return await _seed_clinic_org(scopes, tally, keyring, clinic, personal_orgs, today, org_id)


async def _seed_clinic_org(
    scopes: Scopes,
    tally: _Tally,
    keyring: RecordKeyring,
    clinic: ClinicPlan,
    personal_orgs: Mapping[str, uuid.UUID],
    today: date,
    org_id: uuid.UUID,
) -> DemoOrg:
    async with scopes.system_scope(ACTOR, org_id) as session:
        org = await _ensure_org(session, tally, org_id, clinic.slug, clinic.name, "clinic")
        await _ensure_user(session, tally, clinic.owner)
        await _ensure_membership(session, tally, org_id, clinic.owner, "owner")
        events: dict[tuple[str, EventKind], Event] = {}
        for expert in clinic.experts:
            await _ensure_user(session, tally, expert)
            await _ensure_membership(session, tally, org_id, expert, "member")
            events.update(await _seed_expert_setup(session, tally, clinic, org_id, expert))
        meetings, records = await _seed_meetings(
            session, tally, keyring, clinic, org_id, events, personal_orgs, today
        )
    users = (
        _demo_user(clinic.owner, "owner"),
        *(_demo_user(e, "expert") for e in clinic.experts),
        *(_demo_user(p, "patient", personal_orgs[p.key]) for p in clinic.patients),
    )
    return DemoOrg(
        id=org.id,
        workos_org_id=org.workos_org_id,
        slug=org.slug,
        name=org.name,
        users=users,
        event_ids=tuple(e.id for e in events.values()),
        meeting_ids=meetings,
        record_ids=records,
        events=tuple(
            DemoEvent(e.id, e.slug, e.name, e.price, e.workos_user_id) for e in events.values()
        ),
    )


def _demo_user(person: Person, role: PersonRole, personal: uuid.UUID | None = None) -> DemoUser:
    return DemoUser(person.workos_user_id, person.email, person.name, role, personal)


async def _seed_expert_setup(
    session: Unit, tally: _Tally, clinic: ClinicPlan, org_id: uuid.UUID, expert: Person
) -> dict[tuple[str, EventKind], Event]:
    """Everything an expert needs to be bookable: finished onboarding, a published profile,
    weekday availability, booking rules and two event types (free intro, paid session)."""
    owner = {"org_id": org_id, "workos_user_id": expert.workos_user_id}
    done = {
        f"{step}_completed": True
        for step in ("profile", "availability", "events", "identity", "payment", "google_account")
    }
    await _ensure(
        session,
        tally,
        ExpertSetup,
        owner,
        id=demo_uuid(clinic.slug, expert.key, "setup"),
        setup_complete=True,
        setup_completed_at=datetime(2025, 1, 6, 9, tzinfo=LISBON),
        **done,
    )
    await _ensure(
        session,
        tally,
        Profile,
        owner,
        id=demo_uuid(clinic.slug, expert.key, "profile"),
        first_name=expert.first_name,
        last_name=expert.last_name,
        headline=expert.headline,
        short_bio=f"{expert.headline} at {clinic.name}.",
        published=True,
        is_verified=True,
        is_top_expert=expert.app_role == "expert_top",
    )
    await _seed_availability(session, tally, clinic, org_id, expert)
    await _ensure(
        session,
        tally,
        SchedulingSettings,
        owner,
        before_event_buffer=0,
        after_event_buffer=10,
        minimum_notice=120,
        time_slot_interval=30,
        booking_window_days=60,
    )
    return {
        (expert.key, kind): await _ensure_event(session, tally, clinic, org_id, expert, kind)
        for kind in ("intro", "session")
    }


async def _seed_availability(
    session: Unit, tally: _Tally, clinic: ClinicPlan, org_id: uuid.UUID, expert: Person
) -> None:
    """Monday to Friday, 09:00-17:00 Lisbon time: every demo meeting falls inside it."""
    schedule = await _ensure(
        session,
        tally,
        Schedule,
        {"org_id": org_id, "workos_user_id": expert.workos_user_id},
        id=demo_uuid(clinic.slug, expert.key, "schedule"),
        timezone=TIMEZONE,
    )
    for day in _WEEKDAYS:
        await _ensure(
            session,
            tally,
            ScheduleAvailability,
            {"org_id": org_id, "schedule_id": schedule.id, "day_of_week": day},
            id=demo_uuid(clinic.slug, expert.key, "availability", day.value),
            start_time=time(9),
            end_time=time(17),
        )


async def _ensure_event(
    session: Unit,
    tally: _Tally,
    clinic: ClinicPlan,
    org_id: uuid.UUID,
    expert: Person,
    kind: EventKind,
) -> Event:
    slug, minutes, price = _EVENT_SHAPES[kind]
    name = "Free introductory call" if kind == "intro" else clinic.session_name
    return await _ensure(
        session,
        tally,
        Event,
        {"org_id": org_id, "workos_user_id": expert.workos_user_id, "slug": slug},
        id=demo_uuid(clinic.slug, expert.key, "event", slug),
        name=name,
        description=f"{name} with {expert.name} ({minutes} minutes).",
        duration_in_minutes=minutes,
        price=price,
        currency="eur",
        is_active=True,
        order=0 if kind == "intro" else 1,
    )


__all__ = [
    "CLINICS",
    "DemoEvent",
    "DemoOrg",
    "DemoSummary",
    "DemoUser",
    "demo_uuid",
    "planned_notes",
    "seed_demo",
    "workos_org_id",
]
