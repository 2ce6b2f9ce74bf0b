"""One legacy row → one minimised, masked event (or the reason it cannot be one).

What the old call sites wrote, and what it becomes:

* **Vocabulary of three eras**: generic verbs on table names (``create`` on ``events``), the
  legacy names (``EVENT_CREATED``, ``READ_ALL_MEDICAL_RECORDS_FOR_EXPERT``...) and the new ones
  all map through the catalog (:class:`~carelog.legacy.audit_import.mapping.Vocabulary`).
* **Resources labelled by what they are**: ``MEETING_CREATED`` passed the *event type's* id as
  its resource id, so the event names the booked meeting when the target can find it (event
  type and start time) and keeps the event type as ``event_type_id``; a medical-record row whose
  id is a meeting (``READ_MEDICAL_RECORDS_FOR_MEETING`` and its failures) is a read of that
  meeting's records, so its resource is the appointment; a bulk read names no single record.
* **Organization and patient from the target**: the row's resource decides the organization
  (placeholder actors such as ``unknown`` have no other), and appointment and medical-record
  events name the meeting's patient as data subject, so the access report finds them.
* **Values as they were stored**: deletions wrote ``new_values`` as a JSON *string* ("User
  requested deletion"), kept as ``metadata.reason``; a multi-hop ``X-Forwarded-For`` kept in
  the IP column yields its first (client) hop; webhook rows (``SYSTEM_WEBHOOK`` /
  ``Stripe Webhook``) are the system actor ``system:stripe-webhook``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from carelog.audit.context import AuditContext, normalise_ip
from carelog.audit.errors import AuditInputError
from carelog.audit.events import AuditEvent, Masker, build_event
from carelog.legacy.audit_import.mapping import (
    PLACEHOLDER_ACTOR,
    PLACEHOLDER_ACTORS,
    IdentityResolver,
    Unmapped,
    Vocabulary,
)
from carelog.legacy.audit_import.resources import Found, ResourceIndex, related_ids
from carelog.legacy.audit_import.source import LegacyRow

#: Namespace of imported event ids (uuid5). Never change it: reruns depend on it.
LEGACY_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-5b7a-9c41-2e5d7f0a9b13")
MAX_USER_AGENT = 512
WEBHOOK_IP = "SYSTEM_WEBHOOK"
WEBHOOK_ACTOR = "system:stripe-webhook"
BULK_READS = frozenset({"READ_ALL_MEDICAL_RECORDS_FOR_EXPERT"})
MEETING_CREATED = "MEETING_CREATED"
PATIENT_KINDS = frozenset({"appointment", "medical_record"})


def legacy_event_id(fingerprint: str, legacy_id: int) -> uuid.UUID:
    return uuid.uuid5(LEGACY_NAMESPACE, f"{fingerprint}:{legacy_id}")


def client_hop(raw: str | None) -> str | None:
    """The client address of a stored value: a plain address, or the first hop of an
    ``X-Forwarded-For`` list (``client, proxy1, proxy2``); ``ip:port`` forms are accepted."""
    if not raw:
        return None
    first = raw.split(",")[0].strip()
    ip = normalise_ip(first)
    if ip is None and first.startswith("[") and "]" in first:  # [v6]:port
        ip = normalise_ip(first[1 : first.index("]")])
    if ip is None and first.count(":") == 1:  # v4:port
        ip = normalise_ip(first.split(":")[0])
    return ip


@dataclass(frozen=True)
class Quarantined:
    legacy_id: int
    reason: str
    row: dict[str, Any]


@dataclass
class RowConverter:
    fingerprint: str
    resolver: IdentityResolver
    vocabulary: Vocabulary
    masker: Masker
    resources: ResourceIndex = field(default_factory=ResourceIndex)
    _booked: dict[int, Found | None] = field(default_factory=dict)

    def prepare(self, conn: sa.Connection, rows: list[LegacyRow]) -> None:
        """Batch look-ups in the target: WorkOS ids, resources, meetings booked by id+time."""
        self.resolver.prepare(conn, [r.clerk_user_id for r in rows])
        self.resources.load(conn, rows)
        for row in rows:
            event = self.resources.get(row.resource_id)
            if row.action == MEETING_CREATED and event is not None and event.kind == "event_type":
                values = row.new_values if isinstance(row.new_values, dict) else {}
                start = values.get("startTime")
                self._booked[row.id] = self.resources.meeting_at(conn, event.id, start)

    def refuse(self, row: LegacyRow, reason: str) -> Quarantined:
        return Quarantined(row.id, reason, self.masker.scrub(row.as_json()))

    def convert(self, row: LegacyRow) -> AuditEvent | Quarantined:
        if row.created_at is None:
            return self.refuse(row, "missing created_at: the original time of the event is unknown")
        mapped = self.vocabulary.action(row.action, row.resource_type)
        if mapped is None:
            return self.refuse(row, f"unknown action: {row.action!r} has no home in the catalog")
        spec, outcome = mapped
        resource_type = self.vocabulary.resource_type(row.resource_type)
        if resource_type is None:
            return self.refuse(row, f"unknown resource type: {row.resource_type!r}")
        metadata: dict[str, Any] = {
            "legacy_id": row.id,
            "legacy_source": self.fingerprint,
            "legacy_action": row.action,
            "legacy_resource_type": row.resource_type,
            "legacy_clerk_user_id": row.clerk_user_id,
        }
        resource_id, found, subject, resource_type = self._label(row, resource_type, metadata)
        if subject is None and spec.phi:
            ids = related_ids(row.new_values) + related_ids(row.old_values)
            subject = self.resources.patient_of(ids)
        who = self._who(row, found)
        if isinstance(who, Quarantined):
            return who
        actor, org = who
        ip = client_hop(row.ip_address)  # garbage such as 'SYSTEM_WEBHOOK' becomes None
        if row.ip_address and normalise_ip(row.ip_address) is None:  # not one plain address
            metadata["legacy_ip"] = row.ip_address
        agent = row.user_agent or None
        if agent is not None and len(agent) > MAX_USER_AGENT:
            agent = agent[:MAX_USER_AGENT]
            metadata["legacy_user_agent_truncated"] = True
        old, new = row.old_values, row.new_values
        if isinstance(new, str):  # deletions: the reason, stored as a bare JSON string
            metadata["reason"], new = new, None
        if isinstance(old, str):
            metadata["legacy_old_values_text"], old = old, None
        context = AuditContext(actor_id=actor, org_id=org, ip_address=ip, user_agent=agent)
        try:
            event, _ = build_event(
                self.vocabulary.catalog,
                self.masker,
                context,
                spec.name,
                resource_type,
                resource_id,
                {"old_values": old, "new_values": new},
                metadata,
                data_subject=subject,
                outcome=outcome,
            )
        except AuditInputError as exc:
            return self.refuse(row, f"invalid data: {exc}")
        created = row.created_at
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
        return replace(
            event,
            id=legacy_event_id(self.fingerprint, row.id),
            created_at=created,
            request_id=None,
            source="imported",
        )

    def _who(self, row: LegacyRow, found: Found | None) -> tuple[str, uuid.UUID] | Quarantined:
        """(actor, organization): the resource's organization when carelog holds the resource,
        else the identity's; webhook rows are the webhook's system actor."""
        webhook = row.ip_address == WEBHOOK_IP
        identity = self.resolver.resolve(row.clerk_user_id)
        if isinstance(identity, Unmapped):
            if not (webhook and found is not None):  # a webhook row needs no user
                return self.refuse(row, str(identity))
            return WEBHOOK_ACTOR, found.org_id
        org = found.org_id if found is not None else identity.org_id
        if org is None:
            where = f"its resource {row.resource_type} {row.resource_id!r} is not in the target"
            if identity.workos_user_id != PLACEHOLDER_ACTOR:
                where += f" and {identity.workos_user_id} belongs to no single organization"
            placeholder = row.clerk_user_id in PLACEHOLDER_ACTORS
            kind = "unresolved placeholder actor" if placeholder else "unknown organization"
            return self.refuse(row, f"{kind}: {row.clerk_user_id!r}: {where}")
        return (WEBHOOK_ACTOR if webhook else identity.workos_user_id), org

    def _label(
        self, row: LegacyRow, resource_type: str, metadata: dict[str, Any]
    ) -> tuple[str | None, Found | None, str | None, str]:
        """(resource id, the target row it names, its patient, resource type) of a row."""
        found = self.resources.get(row.resource_id)
        resource_id = row.resource_id
        if row.action in BULK_READS:
            # the resource id is the expert's user id: the read covers all of their records
            metadata["bulk_read_of_expert"] = row.resource_id
            return None, None, None, "medical_record"
        if row.action == MEETING_CREATED and found is not None and found.kind == "event_type":
            metadata["event_type_id"] = str(found.id)
            booked = self._booked.get(row.id)
            if booked is None:
                return None, found, None, "appointment"
            return str(booked.id), booked, booked.patient, "appointment"
        if found is not None and resource_type == "medical_record" and found.kind == "appointment":
            metadata["meeting_id"] = str(found.id)  # a read (or attempt) of its records
            resource_type = "appointment"
        if found is not None and found.kind in PATIENT_KINDS:
            return resource_id, found, found.patient, resource_type
        return resource_id, found, None, resource_type


__all__ = [
    "LEGACY_NAMESPACE",
    "Quarantined",
    "RowConverter",
    "client_hop",
    "legacy_event_id",
]
