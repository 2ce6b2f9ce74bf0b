"""The demo's plan: who works where, which bookings exist, and the stable ids of every row.

Kept apart from the seeding (``carelog.platform.demo``) so the plan reads as data; ids are
UUIDv5 derived from slugs and names (see ``carelog.platform.demo`` for why).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from carelog.db.schema import Day

TIMEZONE = "Europe/Lisbon"
LISBON = ZoneInfo(TIMEZONE)
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://carelog.invalid/demo-seed")
_WEEKDAYS = (Day.MONDAY, Day.TUESDAY, Day.WEDNESDAY, Day.THURSDAY, Day.FRIDAY)

PersonRole = Literal["owner", "expert", "patient"]
EventKind = Literal["intro", "session"]
_EVENT_SHAPES: dict[EventKind, tuple[str, int, int]] = {
    "intro": ("intro-30", 30, 0),  # slug, minutes, price in cents
    "session": ("session-60", 60, 6000),
}


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
