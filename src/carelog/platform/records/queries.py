"""The SQL of medical records, in one place and read as SQL.

Every statement runs in the session it is given: the request's unit (RLS decides which meetings
and records the caller sees, so "not yours" is simply no row) or, for refusal look-ups and key
rotation, a system scope pinned to one organization. Nothing here decides access or audits;
the service does both, around these statements.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from carelog.db.unit import Row, Unit

#: The meeting's parties as the session may see them; the last column is the patient as a data
#: subject (a WorkOS user, or the subject of an anonymous booking).
MEETING_PARTIES = sa.text(
    "select id, org_id, workos_user_id, guest_workos_user_id, guest_org_id,"
    " coalesce(data_subject_id, guest_workos_user_id) as subject_id"
    " from meetings where id = :meeting_id"
)
MEETING_SUBJECT = sa.text(
    "select coalesce(data_subject_id, guest_workos_user_id) from meetings where id = :meeting_id"
)
INSERT_RECORD = sa.text(
    "insert into records (id, org_id, meeting_id, expert_id, guest_email,"
    " vault_encrypted_content, vault_encrypted_metadata, encryption_method, key_id, version)"
    " values (:id, :org_id, :meeting_id, :expert_id, null, :content, :metadata,"
    " :encryption_method, :key_id, 1)"
    " returning created_at"
)
MEETING_RECORDS = sa.text(
    "select id, expert_id, key_id, vault_encrypted_content, vault_encrypted_metadata, version,"
    " created_at, last_modified_at from records"
    " where org_id = :org_id and meeting_id = :meeting_id"
    " order by created_at desc, id desc"
)
#: The row lock serialises concurrent edits: the second waits, then sees the new version.
LOCK_OWN_RECORD = sa.text(
    "select id, key_id, vault_encrypted_content, vault_encrypted_metadata, version from records"
    " where id = :record_id and org_id = :org_id and meeting_id = :meeting_id"
    " and expert_id = :expert_id"
    " for update"
)
#: Only from the version read under the lock; no row back means the record changed meanwhile.
UPDATE_RECORD = sa.text(
    "update records set vault_encrypted_content = :content,"
    " vault_encrypted_metadata = :metadata, key_id = :key_id,"
    " encryption_method = :encryption_method, version = version + 1, last_modified_at = now()"
    " where id = :record_id and version = :version"
    " returning version, last_modified_at"
)
#: Rotation's batch: rows not under the active key, locked so a concurrent edit waits.
LOCK_ROTATION_BATCH = sa.text(
    "select id, meeting_id, key_id, vault_encrypted_content, vault_encrypted_metadata"
    " from records where org_id = :org_id and key_id != :active_key_id"
    " order by id limit :batch_size"
    " for update"
)
#: Re-sealing is not an edit: the content version and last_modified_at stay as they were.
RESEAL_RECORD = sa.text(
    "update records set vault_encrypted_content = :content,"
    " vault_encrypted_metadata = :metadata, key_id = :key_id,"
    " encryption_method = :encryption_method"
    " where id = :record_id and org_id = :org_id"
)


async def meeting_parties(session: Unit, meeting_id: uuid.UUID) -> tuple[Any, ...] | None:
    """The meeting's ids and parties in column order (None: absent, or not visible)."""
    row = (await session.execute(MEETING_PARTIES, {"meeting_id": meeting_id})).one_or_none()
    return None if row is None else tuple(row)


async def meeting_subject(session: Unit, meeting_id: uuid.UUID) -> str | None:
    subject: str | None = await session.scalar(MEETING_SUBJECT, {"meeting_id": meeting_id})
    return subject


async def insert_record(
    session: Unit,
    *,
    record_id: uuid.UUID,
    org_id: uuid.UUID,
    meeting_id: uuid.UUID,
    expert_id: str,
    content: str,
    metadata: str | None,
    encryption_method: str,
    key_id: str,
) -> Any:
    """Insert version 1 of a sealed record; returns its ``created_at``."""
    return await session.scalar(
        INSERT_RECORD,
        {
            "id": record_id,
            "org_id": org_id,
            "meeting_id": meeting_id,
            "expert_id": expert_id,
            "content": content,
            "metadata": metadata,
            "encryption_method": encryption_method,
            "key_id": key_id,
        },
    )


async def meeting_records(session: Unit, org_id: uuid.UUID, meeting_id: uuid.UUID) -> list[Row]:
    """The meeting's sealed records, newest first."""
    params = {"org_id": org_id, "meeting_id": meeting_id}
    return list((await session.execute(MEETING_RECORDS, params)).all())


async def lock_own_record(
    session: Unit,
    record_id: uuid.UUID,
    org_id: uuid.UUID,
    meeting_id: uuid.UUID,
    expert_id: str,
) -> Row | None:
    """The expert's own record of the meeting, locked ``for update`` (None: no such record)."""
    params = {
        "record_id": record_id,
        "org_id": org_id,
        "meeting_id": meeting_id,
        "expert_id": expert_id,
    }
    return (await session.execute(LOCK_OWN_RECORD, params)).one_or_none()


async def update_record(
    session: Unit,
    *,
    record_id: uuid.UUID,
    version: int,
    content: str,
    metadata: str | None,
    key_id: str,
    encryption_method: str,
) -> Row | None:
    """Write the next version; returns (version, last_modified_at), None if ``version`` moved."""
    params = {
        "record_id": record_id,
        "version": version,
        "content": content,
        "metadata": metadata,
        "key_id": key_id,
        "encryption_method": encryption_method,
    }
    return (await session.execute(UPDATE_RECORD, params)).one_or_none()


async def lock_rotation_batch(
    session: Unit, org_id: uuid.UUID, active_key_id: str, batch_size: int
) -> list[Row]:
    params = {"org_id": org_id, "active_key_id": active_key_id, "batch_size": batch_size}
    return list((await session.execute(LOCK_ROTATION_BATCH, params)).all())


async def reseal_record(
    session: Unit,
    *,
    record_id: uuid.UUID,
    org_id: uuid.UUID,
    content: str,
    metadata: str | None,
    key_id: str,
    encryption_method: str,
) -> None:
    params = {
        "record_id": record_id,
        "org_id": org_id,
        "content": content,
        "metadata": metadata,
        "key_id": key_id,
        "encryption_method": encryption_method,
    }
    await session.execute(RESEAL_RECORD, params)
