"""What the target already knows about the things legacy rows name: organization and patient.

A legacy row has no organization and names its patient, if at all, only in free values. The
target does know: the event type, meeting, record, schedule or profile the row's resource id
points to carries ``org_id``, and a meeting (or a record's meeting) carries the patient's
WorkOS id. Looking them up per batch lets the importer put each row in the organization whose
data it touched (also for placeholder actors such as ``unknown``, whose user tells nothing)
and name the patient as data subject, so the patient's access report finds imported history.

Look-ups run through the admin connection (a maintenance command that reads every tenant, like
the identity mapping); ids that are not UUIDs are simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from carelog.legacy.audit_import.source import LegacyRow

#: Keys of legacy values that name a related resource by id (the call sites' spellings).
ID_KEYS = ("meetingId", "recordId", "eventId", "meetingIds", "recordIds")

_LOOKUP = sa.text(
    """
    select 'event_type' as kind, e.id, e.org_id, null::text as patient, null::uuid as meeting_id
      from events e where e.id = any(:ids)
    union all
    select 'appointment', m.id, m.org_id, m.guest_workos_user_id, m.id
      from meetings m where m.id = any(:ids)
    union all
    select 'medical_record', r.id, r.org_id, m.guest_workos_user_id, r.meeting_id
      from records r join meetings m on m.org_id = r.org_id and m.id = r.meeting_id
     where r.id = any(:ids)
    union all
    select 'schedule', s.id, s.org_id, null, null from schedules s where s.id = any(:ids)
    union all
    select 'profile', p.id, p.org_id, null, null from profiles p where p.id = any(:ids)
    """
)
_MEETING_AT = sa.text(
    "select id, org_id, guest_workos_user_id from meetings "
    "where event_id = :event and start_time = :start order by created_at limit 2"
)


@dataclass(frozen=True)
class Found:
    """One target row: its kind (the catalog's resource type), organization and patient."""

    kind: str
    id: uuid.UUID
    org_id: uuid.UUID
    patient: str | None
    meeting_id: uuid.UUID | None


def as_uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("expert-agreement-"):  # the agreement call site's resource id
        text = text.removeprefix("expert-agreement-")
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def related_ids(values: Any) -> list[uuid.UUID]:
    """UUIDs a legacy value names under :data:`ID_KEYS` (one level deep, lists included)."""
    out: list[uuid.UUID] = []
    if not isinstance(values, dict):
        return out
    for key in ID_KEYS:
        raw = values.get(key)
        for item in raw if isinstance(raw, list) else [raw]:
            found = as_uuid(item)
            if found is not None:
                out.append(found)
    return out


class ResourceIndex:
    """Per-batch cache of target rows by id, plus meetings found by (event, start time)."""

    def __init__(self) -> None:
        self._by_id: dict[uuid.UUID, Found] = {}
        self._meetings_at: dict[tuple[uuid.UUID, datetime], Found | None] = {}

    def load(self, conn: sa.Connection, rows: Iterable[LegacyRow]) -> None:
        wanted: set[uuid.UUID] = set()
        for row in rows:
            rid = as_uuid(row.resource_id)
            if rid is not None:
                wanted.add(rid)
            wanted.update(related_ids(row.new_values))
            wanted.update(related_ids(row.old_values))
        wanted -= set(self._by_id)
        if not wanted:
            return
        for kind, id_, org, patient, meeting in conn.execute(_LOOKUP, {"ids": sorted(wanted)}):
            found = Found(str(kind), uuid.UUID(str(id_)), uuid.UUID(str(org)), patient, meeting)
            self._by_id.setdefault(found.id, found)

    def get(self, value: object) -> Found | None:
        rid = value if isinstance(value, uuid.UUID) else as_uuid(value)
        return None if rid is None else self._by_id.get(rid)

    def meeting_at(self, conn: sa.Connection, event: uuid.UUID, start: object) -> Found | None:
        """The one meeting booked on ``event`` at ``start`` (a legacy ISO string), if any."""
        if not isinstance(start, str):
            return None
        try:
            when = datetime.fromisoformat(start.strip())
        except ValueError:
            return None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        key = (event, when)
        if key not in self._meetings_at:
            rows = conn.execute(_MEETING_AT, {"event": event, "start": when}).all()
            self._meetings_at[key] = (
                Found(
                    "appointment",
                    uuid.UUID(str(rows[0][0])),
                    uuid.UUID(str(rows[0][1])),
                    rows[0][2],
                    uuid.UUID(str(rows[0][0])),
                )
                if len(rows) == 1
                else None
            )
        return self._meetings_at[key]

    def patient_of(self, ids: Iterable[uuid.UUID]) -> str | None:
        """The single patient of the named meetings/records, or None (none, or several)."""
        patients = {f.patient for i in ids if (f := self._by_id.get(i)) is not None and f.patient}
        return patients.pop() if len(patients) == 1 else None


__all__ = ["ID_KEYS", "Found", "ResourceIndex", "as_uuid", "related_ids"]
