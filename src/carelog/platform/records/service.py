"""Medical records: who may touch them, how they are sealed, and what the trail says.

Access is decided twice: RLS (only the authoring expert and the meeting's patient see a record)
and here, explicitly, so a refusal is a clear 404 that is *audited as denied* rather than an
empty list. Refusals go through the audit writer, outside the request's transaction, so they
are kept although that transaction rolls back. "Absent" and "not yours" look the same to the
caller (404), so meeting ids of other tenants leak nothing.

Reads are fail-closed: the MEDICAL_RECORD_VIEWED event must be durable before any plaintext
leaves; when it cannot be, ``log_audit_event`` raises ``AuditUnavailableError`` (503) and the
decrypted records are dropped. Plaintext never goes to the database, the audit log or logs.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from carelog.audit import log_audit_event
from carelog.platform.auth.dependencies import RequestUnit
from carelog.platform.errors import ApiError, conflict
from carelog.platform.records import queries
from carelog.platform.records.crypto import RecordDecryptionError, RecordKeyring
from carelog.platform.records.schemas import (
    RecordCreate,
    RecordCreated,
    RecordList,
    RecordOut,
    RecordUpdate,
    RecordUpdated,
)

log = logging.getLogger("carelog.records")

RESOURCE_TYPE = "medical_record"
CREATED = "MEDICAL_RECORD_CREATED"
VIEWED = "MEDICAL_RECORD_VIEWED"
UPDATED = "MEDICAL_RECORD_UPDATED"
#: Names the patient of a refused attempt inside the caller's own org (never returned).
DENIAL_LOOKUP_ACTOR = "system:records-access-check"
MAX_IDS_IN_EVENT = 300  # keeps the VIEWED event far below the audit metadata size cap


@dataclass(frozen=True)
class Parties:
    """Who a meeting concerns: its org and expert, its patient and the patient's org."""

    meeting_id: uuid.UUID
    org_id: uuid.UUID
    expert_id: str
    patient_id: str | None
    patient_org_id: uuid.UUID | None
    #: The patient as a data subject (a WorkOS user, or the subject of an anonymous booking).
    subject_id: str | None


def _not_found(field: str = "meeting_id") -> ApiError:
    what = "record" if field == "record_id" else "appointment"
    return ApiError(
        f"{what} not found",
        status_code=404,
        code="NOT_FOUND",
        field=field,
        hint="only the appointment's expert (and, to read, its patient) can use its records",
    )


async def _parties(unit: RequestUnit, meeting_id: uuid.UUID) -> Parties | None:
    """The meeting as RLS lets this caller see it (None: absent or not visible)."""
    row = await queries.meeting_parties(unit.session, meeting_id)
    return None if row is None else Parties(*row)


async def _subject_of_refused(unit: RequestUnit, meeting_id: uuid.UUID) -> str | None:
    """The patient a refused attempt aimed at, if the meeting is in the caller's own org.

    The caller cannot see the meeting (that is why it was refused), but the patient's access
    report must still show "someone in this clinic tried to read my records". The lookup runs
    as a system actor pinned to the caller's org; its result goes only into the audit event.
    """
    async with unit.scopes.system_scope(DENIAL_LOOKUP_ACTOR, unit.identity.org_id) as session:
        return await queries.meeting_subject(session, meeting_id)


async def _deny(
    unit: RequestUnit,
    action: str,
    meeting_id: uuid.UUID,
    reason: str,
    *,
    parties: Parties | None,
    record_id: uuid.UUID | None = None,
) -> ApiError:
    """Record the refusal (durably, via the writer) and return the 404 to raise."""
    subject = parties.subject_id if parties else await _subject_of_refused(unit, meeting_id)
    metadata: dict[str, Any] = {"meeting_id": str(meeting_id), "reason": reason}
    if record_id is not None:
        metadata["record_id"] = str(record_id)
    await log_audit_event(
        action,
        RESOURCE_TYPE,
        str(record_id or meeting_id),
        None,
        metadata,
        data_subject=subject,
        outcome="denied",
    )
    return _not_found("record_id" if reason == "record_not_found" else "meeting_id")


def _is_expert(unit: RequestUnit, p: Parties) -> bool:
    me = unit.identity
    return p.expert_id == me.user_id and p.org_id == me.org_id


def _is_patient(unit: RequestUnit, p: Parties) -> bool:
    me = unit.identity
    return p.patient_id == me.user_id and p.patient_org_id == me.org_id


async def _as_expert(unit: RequestUnit, meeting_id: uuid.UUID, action: str) -> Parties:
    parties = await _parties(unit, meeting_id)
    if parties is None:
        raise await _deny(unit, action, meeting_id, "not_visible", parties=None)
    if not _is_expert(unit, parties):
        raise await _deny(unit, action, meeting_id, "not_the_expert", parties=parties)
    return parties


def _dump_metadata(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _decrypt(keyring: RecordKeyring, key_id: str, blob: str, row_id: uuid.UUID, p: Parties) -> str:
    try:
        return keyring.decrypt(
            key_id, blob, record_id=row_id, meeting_id=p.meeting_id, org_id=p.org_id
        )
    except RecordDecryptionError as exc:
        # Ids and the reason only: never content, ciphertext or key bytes.
        log.error("record %s could not be decrypted: %s", row_id, exc.message)
        raise ApiError(
            "a record could not be decrypted", status_code=500, code="RECORD_UNREADABLE"
        ) from None


# --------------------------------------------------------------------------- create


async def create_record(
    unit: RequestUnit, keyring: RecordKeyring, meeting_id: uuid.UUID, body: RecordCreate
) -> RecordCreated:
    # Sealed before the expert check: the caller's own text, bound to this meeting in the
    # caller's organization, which is where it lands if the one statement below inserts it.
    me = unit.identity
    record_id = uuid.uuid4()
    ids = {"record_id": record_id, "meeting_id": meeting_id, "org_id": me.org_id}
    content = keyring.encrypt(body.content, **ids)
    metadata = (
        None if body.metadata is None else keyring.encrypt(_dump_metadata(body.metadata), **ids)
    )
    row = await queries.insert_record_as_expert(
        unit.session,
        record_id=record_id,
        meeting_id=meeting_id,
        user_id=me.user_id,
        org_id=me.org_id,
        content=content.blob,
        metadata=None if metadata is None else metadata.blob,
        encryption_method=content.encryption_method,
        key_id=content.key_id,
    )
    if row is None:
        raise await _deny(unit, CREATED, meeting_id, "not_visible", parties=None)
    p = Parties(*row[:6])
    created_at = row.created_at
    if created_at is None or not _is_expert(unit, p):
        raise await _deny(unit, CREATED, meeting_id, "not_the_expert", parties=p)
    await log_audit_event(
        CREATED,
        RESOURCE_TYPE,
        str(record_id),
        None,
        {
            "meeting_id": str(p.meeting_id),
            "metadata_provided": body.metadata is not None,
            "encryption_method": content.encryption_method,
            "key_id": content.key_id,
            "version": 1,
        },
        data_subject=p.subject_id,
    )
    assert created_at is not None
    return RecordCreated(
        record_id=record_id, meeting_id=p.meeting_id, version=1, created_at=created_at
    )


# --------------------------------------------------------------------------- read


async def list_records(
    unit: RequestUnit, keyring: RecordKeyring, meeting_id: uuid.UUID
) -> RecordList:
    me = unit.identity
    rows = await queries.meeting_with_records(unit.session, meeting_id, me.user_id, me.org_id)
    if not rows:
        raise await _deny(unit, VIEWED, meeting_id, "not_visible", parties=None)
    p = Parties(*rows[0][:6])
    as_expert = _is_expert(unit, p)
    if not as_expert and not _is_patient(unit, p):
        raise await _deny(unit, VIEWED, meeting_id, "not_a_participant", parties=p)
    records = [
        RecordOut(
            id=r.record_id,
            meeting_id=p.meeting_id,
            expert_id=r.expert_id,
            content=_decrypt(keyring, r.key_id, r.vault_encrypted_content, r.record_id, p),
            metadata=None
            if r.vault_encrypted_metadata is None
            else json.loads(
                _decrypt(keyring, r.key_id, r.vault_encrypted_metadata, r.record_id, p)
            ),
            version=r.version,
            created_at=r.created_at,
            last_modified_at=r.last_modified_at,
        )
        for r in rows
        if r.record_id is not None
    ]
    ids = [str(r.id) for r in records]
    # Fail-closed: raises AuditUnavailableError (503) before any plaintext is returned.
    await log_audit_event(
        VIEWED,
        RESOURCE_TYPE,
        str(p.meeting_id),
        None,
        {
            "record_ids": ids[:MAX_IDS_IN_EVENT],
            "count": len(ids),
            "ids_truncated": len(ids) > MAX_IDS_IN_EVENT,
            "viewer": "expert" if as_expert else "patient",
        },
        data_subject=p.subject_id,
    )
    return RecordList(meeting_id=p.meeting_id, count=len(records), records=records)


# --------------------------------------------------------------------------- update


async def update_record(
    unit: RequestUnit, keyring: RecordKeyring, meeting_id: uuid.UUID, body: RecordUpdate
) -> RecordUpdated:
    p = await _as_expert(unit, meeting_id, UPDATED)
    # The row lock serialises concurrent edits: the second waits, then sees the new version.
    row = await queries.lock_own_record(
        unit.session, body.record_id, p.org_id, p.meeting_id, unit.identity.user_id
    )
    if row is None:
        raise await _deny(
            unit, UPDATED, meeting_id, "record_not_found", parties=p, record_id=body.record_id
        )
    if body.expected_version is not None and body.expected_version != row.version:
        raise conflict(
            f"the record is at version {row.version}, not {body.expected_version}",
            "VERSION_CONFLICT",
            field="expected_version",
            hint="reload the record and apply your change again",
        )
    old_content = _decrypt(keyring, row.key_id, row.vault_encrypted_content, row.id, p)
    old_meta = row.vault_encrypted_metadata
    old_meta_text = None if old_meta is None else _decrypt(keyring, row.key_id, old_meta, row.id, p)
    new_meta_text = old_meta_text if body.metadata is None else _dump_metadata(body.metadata)
    metadata_changed = body.metadata is not None and (
        old_meta_text is None or json.loads(old_meta_text) != body.metadata
    )
    ids = {"record_id": row.id, "meeting_id": p.meeting_id, "org_id": p.org_id}
    # Both values under the active key: the row has one key_id for both.
    content = keyring.encrypt(body.content, **ids)
    meta = None if new_meta_text is None else keyring.encrypt(new_meta_text, **ids)
    updated = await queries.update_record(
        unit.session,
        record_id=row.id,
        version=row.version,
        content=content.blob,
        metadata=None if meta is None else meta.blob,
        key_id=content.key_id,
        encryption_method=content.encryption_method,
    )
    if updated is None:  # cannot happen under the row lock; refuse rather than overwrite
        raise conflict("the record changed meanwhile", "VERSION_CONFLICT", field="record_id")
    version, modified = updated.version, updated.last_modified_at
    await log_audit_event(
        UPDATED,
        RESOURCE_TYPE,
        str(row.id),
        {"old_values": {"version": row.version}, "new_values": {"version": version}},
        {
            "meeting_id": str(p.meeting_id),
            "content_changed": old_content != body.content,
            "metadata_changed": metadata_changed,
            "key_id": content.key_id,
        },
        data_subject=p.subject_id,
    )
    return RecordUpdated(
        record_id=row.id, meeting_id=p.meeting_id, version=version, last_modified_at=modified
    )
