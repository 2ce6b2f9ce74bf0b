"""The accounting a clinic hands to a patient: HIPAA §164.528 and GDPR Art. 15 in one document.

For six years back (HIPAA's period; GDPR asks for no less): every access to or attempt on the
subject's data recorded in the trail, with the date, who (name and role, not only an id), the
organization, what (a brief description), the purpose and the outcome; and every disclosure
outside the platform from the append-only register (``subject_disclosures``), with recipient,
purpose and description. The document itself never contains a personal value of the subject:
only ids, action names and the register's entries.

Read as a system actor pinned to the organization, after the endpoint or command has checked
that the caller is allowed to ask (an owner or admin; an operator at the CLI).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from carelog.audit.catalog import AuditCatalog
from carelog.db.unit import Unit
from carelog.platform.subjects import queries

ACCOUNTING_ACTOR = "system:subject-accounting"
PERIOD = dt.timedelta(days=6 * 366)
MAX_ENTRIES = 10_000

#: A brief description of what each kind of event touched, for a patient to read.
WHAT: dict[str, str] = {
    "medical_record": "clinical record(s)",
    "appointment": "appointment and booking details",
    "payment": "payment of an appointment",
    "prescription": "prescription",
    "health_data": "health data",
    "data_subject": "your data-subject record",
    "compliance": "the audit trail about you",
    "profile": "profile",
}
VERBS = {"read": "viewed", "write": "written", "system": "processed", "security": "checked"}


@dataclass(frozen=True)
class AccountingEntry:
    at: str
    actor_id: str
    actor_name: str
    actor_role: str
    organization: str
    what: str
    action: str
    purpose: str
    outcome: str
    event_id: str


@dataclass(frozen=True)
class Disclosure:
    at: str
    recipient: str
    purpose: str
    description: str
    recorded_by: str


@dataclass
class Accounting:
    subject_id: str
    org_id: str
    organization: str
    generated_at: str
    period_from: str
    period_to: str
    erased: bool
    access: list[AccountingEntry] = field(default_factory=list)
    disclosures: list[Disclosure] = field(default_factory=list)
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _purpose(action: str, category: str, access: str, role: str, actor_type: str) -> str:
    if role.startswith("patient"):
        return "your own access"
    if category in ("medical_record", "appointment", "prescription", "health_data"):
        return "treatment" if actor_type == "user" else "health care operations"
    if category == "payment":
        return "payment"
    if category == "compliance":
        return "compliance (audit, data-subject request)"
    if access == "security":
        return "security"
    return "health care operations"


async def _people(session: Unit, org_id: uuid.UUID, actors: set[str]) -> dict[str, tuple[str, str]]:
    """Actor id → (name, role) from the org's profiles, memberships and application roles."""
    if not actors:
        return {}
    rows = await queries.rows(
        session, queries.ACTOR_PEOPLE, org_id=org_id, actor_ids=sorted(actors)
    )
    people: dict[str, tuple[str, str]] = {}
    for r in rows:
        name = " ".join(p for p in (r.first_name, r.last_name) if p) or r.username or r.id
        expert = r.app_role.startswith("expert") if r.app_role else False
        role = ("expert" if expert else "staff") if r.member_role else "user"
        if r.member_role:
            role = f"{role} ({r.member_role})"
        people[r.id] = (name, role)
    return people


async def build_accounting(
    session: Unit,
    catalog: AuditCatalog,
    org_id: uuid.UUID,
    subject_id: str,
    *,
    now: dt.datetime | None = None,
) -> Accounting:
    now = now or dt.datetime.now(dt.UTC)
    since = now - PERIOD
    mine = {"org_id": org_id, "subject_id": subject_id}
    org = await queries.scalar(session, queries.ORG_NAME, org_id=org_id)
    erased = await queries.scalar(session, queries.SUBJECT_IS_ERASED, **mine)
    events = await queries.rows(
        session, queries.ACCESS_EVENTS, **mine, since=since, limit=MAX_ENTRIES + 1
    )
    people = await _people(
        session, org_id, {e.workos_user_id for e in events if e.actor_type == "user"}
    )
    result = Accounting(
        subject_id=subject_id,
        org_id=str(org_id),
        organization=org or str(org_id),
        generated_at=now.isoformat(),
        period_from=since.date().isoformat(),
        period_to=now.date().isoformat(),
        erased=bool(erased),
        truncated=len(events) > MAX_ENTRIES,
    )
    for e in events[:MAX_ENTRIES]:
        spec = catalog.actions.get(e.action)
        access = spec.access if spec else "write"
        category = spec.category if spec else e.resource_type
        if e.actor_type == "system":
            name, role = f"carelog ({e.workos_user_id.removeprefix('system:')})", "system"
        elif e.workos_user_id == subject_id:
            name, role = "you", "patient (the data subject)"
        else:
            name, role = people.get(e.workos_user_id, (e.workos_user_id, "user"))
        what = WHAT.get(e.resource_type, e.resource_type.replace("_", " "))
        result.access.append(
            AccountingEntry(
                at=e.created_at.isoformat(),
                actor_id=e.workos_user_id,
                actor_name=name,
                actor_role=role,
                organization=result.organization,
                what=f"{what} {VERBS.get(access, 'processed')}",
                action=e.action,
                purpose=_purpose(e.action, category, access, role, e.actor_type),
                outcome=e.outcome,
                event_id=str(e.id),
            )
        )
    disclosures = await queries.rows(session, queries.DISCLOSURES, **mine, since=since)
    result.disclosures = [
        Disclosure(d.disclosed_at.isoformat(), d.recipient, d.purpose, d.description, d.recorded_by)
        for d in disclosures
    ]
    return result


async def record_disclosure(
    session: Unit,
    org_id: uuid.UUID,
    subject_id: str,
    recorded_by: str,
    *,
    recipient: str,
    purpose: str,
    description: str,
    disclosed_at: dt.datetime,
) -> uuid.UUID:
    """Append one disclosure to the register (inside the caller's unit: an admin's or a job's)."""
    from carelog.audit import log_audit_event

    disclosure_id = uuid.uuid4()
    await session.execute(
        queries.INSERT_DISCLOSURE,
        {
            "disclosure_id": disclosure_id,
            "org_id": org_id,
            "subject_id": subject_id,
            "recipient": recipient,
            "purpose": purpose,
            "description": description,
            "disclosed_at": disclosed_at,
            "recorded_by": recorded_by,
        },
    )
    await log_audit_event(
        "SUBJECT_DISCLOSURE_RECORDED",
        "data_subject",
        subject_id,
        None,
        {"disclosure_id": str(disclosure_id), "recipient": recipient, "purpose": purpose},
        data_subject=subject_id,
    )
    return disclosure_id
