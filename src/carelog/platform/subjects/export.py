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

from carelog.audit import log_audit_event
from carelog.audit.api import AuditService
from carelog.audit.sealing import open_event_values
from carelog.db.session import Scopes
from carelog.platform.common import system_audit
from carelog.platform.records.crypto import RecordDecryptionError, RecordKeyring
from carelog.platform.subjects import queries
from carelog.platform.subjects.accounting import build_accounting

EXPORT_ACTOR = "system:subject-export"
FORMAT = "carelog.subject-export.v1"


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
            mine = {"org_id": org_id, "subject_id": subject_id}
            profile = await queries.first(session, queries.SUBJECT_PROFILE, **mine)
            meetings = await queries.rows(session, queries.SUBJECT_MEETINGS, **mine)
            records = await queries.rows(session, queries.SUBJECT_RECORDS, **mine)
            events = await queries.rows(session, queries.SUBJECT_EVENTS, **mine)
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
