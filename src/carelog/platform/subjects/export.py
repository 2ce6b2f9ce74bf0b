"""Everything carelog holds about a data subject, as one machine-readable bundle (GDPR Art. 15
and 20): their subject record, meetings with the details they gave, their clinical records
decrypted, their audit events with sealed values opened under their key, and the accounting.

The export is itself an audited read (``SUBJECT_DATA_EXPORTED``, fail-closed): the event is
durable before the bundle is handed over. A bundle handed out is beyond any later erasure;
docs/erasure.md says so, and so does the bundle.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import sqlalchemy as sa

from carelog.audit import log_audit_event
from carelog.audit.api import AuditService
from carelog.audit.sealing import open_event_values
from carelog.db.session import Scopes
from carelog.platform.common import system_audit
from carelog.platform.records.crypto import RecordDecryptionError, RecordKeyring
from carelog.platform.subjects.accounting import build_accounting

EXPORT_ACTOR = "system:subject-export"
FORMAT = "carelog.subject-export.v1"
_MINE = "m.org_id = :o and (m.data_subject_id = :s or m.guest_workos_user_id = :s)"


def _plain(row: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row._mapping.items()}


async def export_subject(
    scopes: Scopes,
    service: AuditService,
    keyring: RecordKeyring,
    org_id: uuid.UUID,
    subject_id: str,
    requested_by: str,
) -> dict[str, Any]:
    with system_audit(EXPORT_ACTOR, org_id):
        async with scopes.system_scope(EXPORT_ACTOR, org_id) as session:
            profile = (
                await session.execute(
                    sa.text(
                        "select subject_id, kind, workos_user_id, created_at, erased_at"
                        " from data_subjects where org_id = :o and subject_id = :s"
                    ),
                    {"o": org_id, "s": subject_id},
                )
            ).first()
            meetings = (
                await session.execute(
                    sa.text(
                        "select m.id, m.event_id, m.start_time, m.end_time, m.timezone, m.status,"
                        " m.guest_email, m.guest_name, m.guest_notes, m.stripe_payment_status,"
                        f" m.stripe_amount from meetings m where {_MINE} order by m.start_time"
                    ),
                    {"o": org_id, "s": subject_id},
                )
            ).all()
            records = (
                await session.execute(
                    sa.text(
                        "select r.id, r.meeting_id, r.expert_id, r.key_id, r.version,"
                        " r.vault_encrypted_content, r.vault_encrypted_metadata, r.created_at,"
                        " r.last_modified_at, r.destroy_after from records r join meetings m"
                        f" on m.org_id = r.org_id and m.id = r.meeting_id where {_MINE}"
                        " order by r.created_at"
                    ),
                    {"o": org_id, "s": subject_id},
                )
            ).all()
            events = (
                await session.execute(
                    sa.text(
                        "select id, created_at, workos_user_id, action, resource_type,"
                        " resource_id, outcome, old_values, new_values, metadata"
                        " from audit_logs where org_id = :o and data_subject_id = :s"
                        " order by created_at, id"
                    ),
                    {"o": org_id, "s": subject_id},
                )
            ).all()
            accounting = await build_accounting(session, service.catalog, org_id, subject_id)
        key = None
        if service.subject_keys is not None:
            key = await service.subject_keys.get(org_id, subject_id, create=False)
        bundle: dict[str, Any] = {
            "format": FORMAT,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(),
            "organization": {"id": str(org_id), "name": accounting.organization},
            "subject": None if profile is None else _plain(profile),
            "meetings": [_plain(m) for m in meetings],
            "clinical_records": [_record(keyring, org_id, r) for r in records],
            "audit_events": [
                {
                    **{k: v for k, v in _plain(e).items() if k not in _VALUES},
                    **{
                        k: open_event_values(getattr(e, k), key, org_id, e.id, path)
                        for k, path in _VALUES.items()
                    },
                }
                for e in events
            ],
            "accounting": accounting.to_json(),
            "notice": "This copy is yours; an erasure requested later cannot reach it.",
        }
        await log_audit_event(
            "SUBJECT_DATA_EXPORTED",
            "data_subject",
            subject_id,
            None,
            {
                "requested_by": requested_by,
                "meetings": len(meetings),
                "clinical_records": len(records),
                "audit_events": len(events),
            },
            data_subject=subject_id,
        )
    plain: dict[str, Any] = json.loads(json.dumps(bundle, default=str))
    return plain


_VALUES = {"old_values": "/o", "new_values": "/n", "metadata": "/m"}


def _record(keyring: RecordKeyring, org_id: uuid.UUID, r: Any) -> dict[str, Any]:
    ids = {"record_id": r.id, "meeting_id": r.meeting_id, "org_id": org_id}
    try:
        content: str | None = keyring.decrypt(r.key_id, r.vault_encrypted_content, **ids)
        meta = r.vault_encrypted_metadata
        metadata = None if meta is None else json.loads(keyring.decrypt(r.key_id, meta, **ids))
        status = "decrypted"
    except RecordDecryptionError as exc:
        content, metadata, status = None, None, f"unreadable: {exc.message}"
    return {
        "id": str(r.id),
        "meeting_id": str(r.meeting_id),
        "expert_id": r.expert_id,
        "version": r.version,
        "created_at": r.created_at,
        "last_modified_at": r.last_modified_at,
        "destroy_after": r.destroy_after,
        "content": content,
        "metadata": metadata,
        "status": status,
    }
