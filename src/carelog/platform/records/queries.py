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

#: A meeting's parties (``{m}``: the table's alias, if any); the last column is the patient as
#: a data subject (a WorkOS user, or the subject of an anonymous booking).
_PARTY_COLUMNS = (
    "{m}id, {m}org_id, {m}workos_user_id, {m}guest_workos_user_id, {m}guest_org_id,"
    " coalesce({m}data_subject_id, {m}guest_workos_user_id) as subject_id"
)
#: The meeting's parties as the session may see them.
MEETING_PARTIES = sa.text(
    f"select {_PARTY_COLUMNS.format(m='')} from meetings where id = :meeting_id"
)
MEETING_SUBJECT = sa.text(
    "select coalesce(data_subject_id, guest_workos_user_id) from meetings where id = :meeting_id"
)
#: Whether the caller is a party of the meeting: its expert in the meeting's organization, or
#: its patient in the patient's (the service decides the same from the parties it reads).
_IS_PARTY = (
    "((m.workos_user_id = :user_id and m.org_id = :org_id)"
    " or (m.guest_workos_user_id = :user_id and m.guest_org_id = :org_id))"
)
_PARTIES = _PARTY_COLUMNS.format(m="m.")
#: The meeting's parties and, only for a caller who is one of them, its sealed records, newest
#: first, in one round trip: the records are joined under the party condition, so a caller who
#: is not a party gets the parties row alone (the refusal is still recorded with its subject)
#: and no ciphertext. RLS applies to both tables on top.
MEETING_WITH_RECORDS = sa.text(
    f"select {_PARTIES}, r.id as record_id, r.expert_id, r.key_id, r.vault_encrypted_content,"
    " r.vault_encrypted_metadata, r.version, r.created_at, r.last_modified_at"
    " from meetings m left join records r"
    f" on r.org_id = m.org_id and r.meeting_id = m.id and {_IS_PARTY}"
    " where m.id = :meeting_id"
    " order by r.created_at desc, r.id desc"
)
#: A new record inserted only when the caller is the meeting's expert in its organization,
#: with the parties read by the same statement: ``created_at`` is null when nothing was
#: inserted (the caller is not the expert), and no row comes back for a meeting the caller
#: cannot see.
INSERT_RECORD_AS_EXPERT = sa.text(
    f"with m as (select {_PARTY_COLUMNS.format(m='')} from meetings where id = :meeting_id),"
    " inserted as (insert into records (id, org_id, meeting_id, expert_id, guest_email,"
    " vault_encrypted_content, vault_encrypted_metadata, encryption_method, key_id, version)"
    " select :id, m.org_id, m.id, :user_id, null, :content, :metadata, :encryption_method,"
    " :key_id, 1 from m where m.workos_user_id = :user_id and m.org_id = :org_id"
    " returning created_at)"
    " select m.*, (select created_at from inserted) as created_at from m"
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


async def meeting_with_records(
    session: Unit, meeting_id: uuid.UUID, user_id: str, org_id: uuid.UUID
) -> list[Row]:
    """The parties in every row's first six columns, then one record per row (a party's)."""
    params = {"meeting_id": meeting_id, "user_id": user_id, "org_id": org_id}
    return list((await session.execute(MEETING_WITH_RECORDS, params)).all())


async def insert_record_as_expert(
    session: Unit,
    *,
    record_id: uuid.UUID,
    meeting_id: uuid.UUID,
    user_id: str,
    org_id: uuid.UUID,
    content: str,
    metadata: str | None,
    encryption_method: str,
    key_id: str,
) -> Row | None:
    """Version 1 of a sealed record, inserted if the caller is the meeting's expert; the
    parties and ``created_at`` (null when not inserted), or None for an invisible meeting."""
    params = {
        "id": record_id,
        "meeting_id": meeting_id,
        "user_id": user_id,
        "org_id": org_id,
        "content": content,
        "metadata": metadata,
        "encryption_method": encryption_method,
        "key_id": key_id,
    }
    return (await session.execute(INSERT_RECORD_AS_EXPERT, params)).one_or_none()


async def meeting_subject(session: Unit, meeting_id: uuid.UUID) -> str | None:
    subject: str | None = await session.scalar(MEETING_SUBJECT, {"meeting_id": meeting_id})
    return subject


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
