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
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.core.errors import CarelogError
from carelog.db.schema import (
    Base,
    Day,
    Event,
    ExpertSetup,
    Meeting,
    Organization,
    Profile,
    Record,
    Role,
    Schedule,
    ScheduleAvailability,
    SchedulingSettings,
    User,
    UserOrgMembership,
)
from carelog.db.session import Scopes
from carelog.platform.records.crypto import ENCRYPTION_METHOD, RecordKeyring

ACTOR = "system:demo-seed"
TIMEZONE = "Europe/Lisbon"
LISBON = ZoneInfo(TIMEZONE)
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://carelog.invalid/demo-seed")
_WEEKDAYS = (Day.MONDAY, Day.TUESDAY, Day.WEDNESDAY, Day.THURSDAY, Day.FRIDAY)

PersonRole = Literal["owner", "expert", "patient"]
EventKind = Literal["intro", "session"]
ModelT = TypeVar("ModelT", bound=Base)


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Person:
    key: str  # lowercase, underscores: becomes user_demo_<key>
    first_name: str
    last_name: str
    app_role: str = "user"
    headline: str = ""

    @property
    def workos_user_id(self) -> str:
        return f"user_demo_{self.key}"

    @property
    def email(self) -> str:
        return f"{self.key.replace('_', '.')}@demo.carelog.invalid"

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def personal_slug(self) -> str:
        return "demo-patient-" + self.key.replace("_", "-")


@dataclass(frozen=True)
class MeetingPlan:
    expert: str  # Person.key
    patient: str  # Person.key
    kind: EventKind
    business_day: int  # business days from the seeding day; < 0 = already happened
    hour: int  # local start hour in Europe/Lisbon
    note: str | None = None  # clinical note of a past meeting (becomes the encrypted record)


@dataclass(frozen=True)
class ClinicPlan:
    slug: str
    name: str
    owner: Person
    experts: tuple[Person, ...]
    patients: tuple[Person, ...]
    session_name: str
    meetings: tuple[MeetingPlan, ...]


CLINICS: tuple[ClinicPlan, ...] = (
    ClinicPlan(
        slug="demo-lisbon",
        name="Lisbon Wellness Clinic",
        owner=Person("helena_martins", "Helena", "Martins", app_role="admin"),
        experts=(
            Person("ana_ferreira", "Ana", "Ferreira", "expert_top", "Clinical psychologist"),
            Person("miguel_costa", "Miguel", "Costa", "expert_community", "Nutritionist"),
        ),
        patients=(
            Person("joana_silva", "Joana", "Silva"),
            Person("tiago_almeida", "Tiago", "Almeida"),
            Person("sofia_rodrigues", "Sofia", "Rodrigues"),
        ),
        session_name="Consultation",
        meetings=(
            MeetingPlan(
                "ana_ferreira",
                "joana_silva",
                "session",
                -2,
                10,
                "Reports improved sleep since last visit; anxiety 5/10 (was 7/10). "
                "Continue breathing exercises; review in two weeks.",
            ),
            MeetingPlan(
                "ana_ferreira",
                "tiago_almeida",
                "intro",
                -1,
                14,
                "Intro call: work-related stress, no prior therapy. Agreed on weekly sessions.",
            ),
            MeetingPlan(
                "miguel_costa",
                "sofia_rodrigues",
                "session",
                -1,
                10,
                "Food diary reviewed. Iron-rich meal plan given; blood test results pending.",
            ),
            MeetingPlan("ana_ferreira", "joana_silva", "session", 1, 10),
            MeetingPlan("ana_ferreira", "sofia_rodrigues", "intro", 2, 11),
            MeetingPlan("ana_ferreira", "tiago_almeida", "session", 3, 15),
            MeetingPlan("miguel_costa", "joana_silva", "intro", 1, 14),
            MeetingPlan("miguel_costa", "tiago_almeida", "session", 4, 9),
        ),
    ),
    ClinicPlan(
        slug="demo-porto",
        name="Porto Physio",
        owner=Person("joao_pereira", "Joao", "Pereira", app_role="admin"),
        experts=(Person("rita_sousa", "Rita", "Sousa", "expert_top", "Sports physiotherapist"),),
        patients=(
            Person("pedro_santos", "Pedro", "Santos"),
            Person("marta_oliveira", "Marta", "Oliveira"),
        ),
        session_name="Physiotherapy session",
        meetings=(
            MeetingPlan(
                "rita_sousa",
                "pedro_santos",
                "session",
                -2,
                11,
                "Right knee, week 3 after ACL reconstruction: flexion 95 degrees, mild swelling. "
                "Progress to closed-chain exercises.",
            ),
            MeetingPlan(
                "rita_sousa",
                "marta_oliveira",
                "intro",
                -1,
                9,
                "Intro call: chronic lower back pain, desk job. Assessment booked.",
            ),
            MeetingPlan("rita_sousa", "pedro_santos", "session", 1, 16),
            MeetingPlan("rita_sousa", "marta_oliveira", "session", 2, 10),
        ),
    ),
)


# ---------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class DemoUser:
    workos_user_id: str
    email: str
    name: str
    role: PersonRole
    personal_org_id: uuid.UUID | None = None  # patients only

    def as_dict(self) -> dict[str, Any]:
        return {
            "workos_user_id": self.workos_user_id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "personal_org_id": str(self.personal_org_id) if self.personal_org_id else None,
        }


@dataclass(frozen=True)
class DemoEvent:
    """An event type a visitor can book; ``price == 0`` is bookable with ``POST /api/meetings``."""

    id: uuid.UUID
    slug: str
    name: str
    price: int
    expert: str  # the expert's workos_user_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "slug": self.slug,
            "name": self.name,
            "price": self.price,
            "expert": self.expert,
        }


@dataclass(frozen=True)
class DemoOrg:
    id: uuid.UUID
    workos_org_id: str
    slug: str
    name: str
    users: tuple[DemoUser, ...]
    event_ids: tuple[uuid.UUID, ...]
    meeting_ids: tuple[uuid.UUID, ...]
    record_ids: tuple[uuid.UUID, ...]
    events: tuple[DemoEvent, ...] = ()

    def user(self, role: PersonRole) -> DemoUser:
        """The first user with this role (e.g. the owner)."""
        return next(u for u in self.users if u.role == role)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "workos_org_id": self.workos_org_id,
            "slug": self.slug,
            "name": self.name,
            "users": [u.as_dict() for u in self.users],
            "event_ids": [str(i) for i in self.event_ids],
            "events": [e.as_dict() for e in self.events],
            "meeting_ids": [str(i) for i in self.meeting_ids],
            "record_ids": [str(i) for i in self.record_ids],
        }


@dataclass(frozen=True)
class DemoSummary:
    """What the demo consists of. ``created_rows`` is 0 when everything already existed."""

    orgs: tuple[DemoOrg, ...]
    created_rows: int = field(default=0, compare=False)

    def org(self, slug: str) -> DemoOrg:
        return next(o for o in self.orgs if o.slug == slug)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able ids only (identical for every run against the same database)."""
        return {"orgs": [o.as_dict() for o in self.orgs]}

    def describe(self) -> str:
        users = sum(len(o.users) for o in self.orgs)
        meetings = sum(len(o.meeting_ids) for o in self.orgs)
        records = sum(len(o.record_ids) for o in self.orgs)
        slugs = ", ".join(o.slug for o in self.orgs)
        done = (
            f"created {self.created_rows} rows"
            if self.created_rows
            else "already present, nothing created"
        )
        return (
            f"{len(self.orgs)} clinics ({slugs}), {users} users, {meetings} meetings, "
            f"{records} encrypted records; {done}"
        )


# ---------------------------------------------------------------------------- ids


def demo_uuid(*parts: str) -> uuid.UUID:
    """The stable id of one demo row (see the module docstring for why ids are derived)."""
    return uuid.uuid5(_NAMESPACE, "/".join(parts))


def workos_org_id(slug: str) -> str:
    """``demo-lisbon`` → ``org_demo_lisbon`` (WorkOS-style, without the doubled 'demo')."""
    return "org_demo_" + slug.removeprefix("demo-").replace("-", "_")


def meeting_id(clinic: ClinicPlan, index: int) -> uuid.UUID:
    return demo_uuid(clinic.slug, "meeting", str(index))


def record_id(clinic: ClinicPlan, index: int) -> uuid.UUID:
    return demo_uuid(clinic.slug, "record", str(index))


def planned_notes() -> dict[uuid.UUID, str]:
    """Record id → the plaintext the seed encrypts (lets tests check decryption)."""
    return {
        record_id(clinic, i): plan.note
        for clinic in CLINICS
        for i, plan in enumerate(clinic.meetings)
        if plan.note is not None
    }


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


@dataclass
class _Tally:
    created: int = 0


async def _ensure(
    session: AsyncSession,
    tally: _Tally,
    model: type[ModelT],
    key: Mapping[str, object],
    **values: object,
) -> ModelT:
    """Find the row by ``key`` or insert it with ``values`` (flushed at once, so FKs hold)."""
    found = (await session.scalars(sa.select(model).filter_by(**key))).one_or_none()
    if found is not None:
        return found
    row = model(**key, **values)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise CarelogError(
            f"cannot create demo {model.__tablename__} row {dict(key)!r}: a conflicting row "
            "exists that the demo did not create",
            hint="seed the demo into a database without clashing demo slugs or user ids",
        ) from exc
    tally.created += 1
    return row


async def _ensure_org(
    session: AsyncSession, tally: _Tally, org_id: uuid.UUID, slug: str, name: str, kind: str
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


async def _ensure_user(session: AsyncSession, tally: _Tally, person: Person) -> User:
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
    session: AsyncSession, tally: _Tally, org_id: uuid.UUID, person: Person, role: str
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
    session: AsyncSession, tally: _Tally, clinic: ClinicPlan, org_id: uuid.UUID, expert: Person
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
    session: AsyncSession, tally: _Tally, clinic: ClinicPlan, org_id: uuid.UUID, expert: Person
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


_EVENT_SHAPES: dict[EventKind, tuple[str, int, int]] = {
    "intro": ("intro-30", 30, 0),  # slug, minutes, price in cents
    "session": ("session-60", 60, 6000),
}


async def _ensure_event(
    session: AsyncSession,
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


async def _seed_meetings(
    session: AsyncSession,
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
    session: AsyncSession,
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
    session: AsyncSession,
    tally: _Tally,
    keyring: RecordKeyring,
    id_: uuid.UUID,
    meeting: Meeting,
    note: str,
) -> Record:
    """The note is sealed to (record, meeting, org); no guest_email is stored."""
    existing = (await session.scalars(sa.select(Record).filter_by(id=id_))).one_or_none()
    if existing is not None:  # do not re-encrypt: the first run's ciphertext stays
        return existing
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
