"""Re-encrypting medical records under the active key (``carelog keys rotate``).

One transaction per organization, through the system role pinned to that org (never "all
orgs"), with the ENCRYPTION_KEY_ROTATED event inside the same transaction: either the org's
records are all under the new key and the trail says so, or nothing changed. Rows are locked
while they are rewritten, so a concurrent edit waits instead of being overwritten; the content
version is unchanged (rotation is not an edit).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from carelog.audit import audit_context, log_audit_event
from carelog.db.session import Scopes
from carelog.platform.records import queries
from carelog.platform.records.crypto import RecordKeyring

ROTATION_ACTOR = "system:key-rotation"
BATCH_SIZE = 500


@dataclass
class RotationResult:
    org_id: uuid.UUID
    to_key_id: str
    rotated: int = 0
    from_key_ids: set[str] = field(default_factory=set)


async def rotate_org(
    scopes: Scopes, keyring: RecordKeyring, org_id: uuid.UUID, *, batch_size: int = BATCH_SIZE
) -> RotationResult:
    """Re-encrypt every record of one org that is not under the active key."""
    active = keyring.active_key_id
    result = RotationResult(org_id, active)
    with audit_context(actor_id=ROTATION_ACTOR, org_id=org_id):
        async with scopes.system_scope(ROTATION_ACTOR, org_id) as session:
            while True:
                rows = await queries.lock_rotation_batch(session, org_id, active, batch_size)
                if not rows:
                    break
                for row in rows:
                    ids = {"record_id": row.id, "meeting_id": row.meeting_id, "org_id": org_id}
                    content = keyring.rotate(row.key_id, row.vault_encrypted_content, **ids)
                    meta = row.vault_encrypted_metadata
                    new_meta = None if meta is None else keyring.rotate(row.key_id, meta, **ids)
                    await queries.reseal_record(
                        session,
                        record_id=row.id,
                        org_id=org_id,
                        content=content.blob,
                        metadata=None if new_meta is None else new_meta.blob,
                        key_id=content.key_id,
                        encryption_method=content.encryption_method,
                    )
                    result.from_key_ids.add(row.key_id)
                result.rotated += len(rows)
            if result.rotated:
                await log_audit_event(
                    "ENCRYPTION_KEY_ROTATED",
                    "encryption_key",
                    active,
                    None,
                    {
                        "records": result.rotated,
                        "from_key_ids": sorted(result.from_key_ids),
                        "to_key_id": active,
                    },
                )
    return result
