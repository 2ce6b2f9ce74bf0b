"""GDPR Art. 17 erasure of a data subject, keeping every audit proof valid.

Two steps, so nothing is half-done and nothing is lost silently:

1. :func:`request_erasure` records the request (``subject_erasures``, status ``requested``)
   and commits: from then on the request exists even if the process dies.
2. :func:`carry_out` does everything else in ONE transaction of the system role pinned to the
   organization: legal holds are checked (an active hold on the subject or the whole org
   refuses the erasure, naming the hold), contact details and free text are erased from the
   operational tables, clinical records under retention are kept (encrypted) and scheduled
   for destruction, the subject's audit data key is destroyed, and a signed erasure
   certificate is written into the trail in the same transaction. A crash anywhere rolls all
   of it back and leaves the request ``requested``; running it again completes it
   (:func:`resume_pending`).

The audit log itself is never rewritten: its personal values were sealed under the data key,
so destroying the key erases them while every leaf, root, checkpoint and proof stays valid.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carelog.audit import log_audit_event
from carelog.audit.integrity.canonical import canonical_bytes
from carelog.audit.integrity.checkpoint import SigningKeyring
from carelog.audit.subject_keys import SubjectKeyStore
from carelog.db.session import Scopes
from carelog.db.unit import Unit
from carelog.platform.common import system_audit
from carelog.platform.errors import ApiError
from carelog.platform.subjects import queries
from carelog.platform.subjects.identity import SubjectDirectory

ERASURE_ACTOR = "system:subject-erasure"
CERTIFICATE_VERSION = 1
#: Clinical records are kept this long after they were last written, then destroyed (a common
#: medical-records retention period in the EU; an organization with a longer legal obligation
#: must place a legal hold, which refuses the erasure instead).
CLINICAL_RETENTION = dt.timedelta(days=3650)
ERASED_EMAIL = "erased@invalid"
ERASED_NAME = "[erased]"
#: What an erasure cannot reach; the certificate says so instead of pretending otherwise.
NOT_REACHED = (
    "audit exports and offline proof bundles handed out before the erasure",
    "database backups and WAL archives until they expire",
    "copies held by the identity provider (WorkOS) and by Stripe",
    "version-1 audit events (masks under the deployment key, not the subject key)",
)


class ErasureRefusedError(ApiError):
    """An active legal hold wins over the erasure request."""


@dataclass(frozen=True)
class Erasure:
    id: uuid.UUID
    org_id: uuid.UUID
    subject_id: str
    status: str
    outcome: dict[str, Any] | None


def _unknown_subject(field: str) -> ApiError:
    return ApiError(
        "no data subject with that identity in this organization",
        status_code=404,
        code="SUBJECT_NOT_FOUND",
        field=field,
        hint="give the subject id shown in the audit trail, or the e-mail they booked with",
    )


async def _find_subject(
    session: Unit,
    directory: SubjectDirectory,
    org_id: uuid.UUID,
    subject: str | None,
    email: str | None,
) -> str:
    if email is not None:
        found = await directory.find(session, org_id, email)
        if found is None:
            raise _unknown_subject("email")
        return found
    assert subject is not None
    known = await queries.scalar(session, queries.SUBJECT_KNOWN, org_id=org_id, subject_id=subject)
    if not known:
        raise _unknown_subject("subject")
    return subject


async def request_erasure(
    scopes: Scopes,
    directory: SubjectDirectory,
    org_id: uuid.UUID,
    *,
    subject: str | None = None,
    email: str | None = None,
    reason: str,
    requested_by: str,
) -> Erasure:
    """Record the request (committed), or return the subject's open or completed one."""
    if (subject is None) == (email is None):
        raise ApiError(
            "name the subject by id or by e-mail (exactly one)",
            status_code=422,
            code="INVALID_INPUT",
            field="subject",
        )
    if not reason.strip():
        raise ApiError(
            "a reason is required", status_code=422, code="INVALID_INPUT", field="reason"
        )
    async with scopes.system_scope(ERASURE_ACTOR, org_id) as session:
        subject_id = await _find_subject(session, directory, org_id, subject, email)
        existing = await queries.first(
            session, queries.OPEN_OR_DONE_ERASURE, org_id=org_id, subject_id=subject_id
        )
        if existing is not None:
            return Erasure(existing.id, org_id, subject_id, existing.status, existing.outcome)
        erasure_id = await queries.scalar(
            session,
            queries.INSERT_ERASURE,
            org_id=org_id,
            subject_id=subject_id,
            reason=reason.strip()[:2000],
            requested_by=requested_by,
        )
    assert erasure_id is not None
    return Erasure(erasure_id, org_id, subject_id, "requested", None)


async def _active_hold(session: Unit, org_id: uuid.UUID, subject: str) -> Any:
    return await queries.first(session, queries.ACTIVE_HOLD, org_id=org_id, subject_id=subject)


async def _erase_operational(
    session: Unit, org_id: uuid.UUID, subject: str, workos: bool
) -> dict[str, int]:
    mine = {"org_id": org_id, "subject_id": subject}
    tables: dict[str, int] = {}
    # Reservations carry only the e-mail: match it before the meetings lose theirs.
    reservations = await queries.rows(session, queries.DELETE_RESERVATIONS, **mine)
    tables["slot_reservations"] = len(reservations)
    meetings = await queries.rows(
        session,
        queries.ERASE_MEETINGS,
        **mine,
        erased_email=ERASED_EMAIL,
        erased_name=ERASED_NAME,
    )
    tables["meetings"] = len(meetings)
    tables["records"] = 0
    tables["users"] = 0
    if workos:
        # Patients only, never staff (see queries.ERASE_USER); WorkOS keeps its copy.
        users = await queries.rows(session, queries.ERASE_USER, **mine, erased_email=ERASED_EMAIL)
        tables["users"] = len(users)
    tables["data_subjects"] = len(await queries.rows(session, queries.ERASE_SUBJECT, **mine))
    return tables


async def _retain_records(session: Unit, org_id: uuid.UUID, subject: str) -> dict[str, Any]:
    rows = await queries.rows(
        session,
        queries.RETAIN_RECORDS,
        org_id=org_id,
        subject_id=subject,
        retention=CLINICAL_RETENTION,
    )
    latest = max((r.destroy_after for r in rows), default=None)
    return {
        "clinical_records_kept": len(rows),
        "destroy_after": None if latest is None else latest.isoformat(),
        "basis": f"clinical-record retention ({CLINICAL_RETENTION.days} days after last change)",
        "kept_encrypted": True,
    }


async def carry_out(
    scopes: Scopes,
    signing: SigningKeyring,
    erasure: Erasure,
    *,
    interrupt: Callable[[str], None] | None = None,
) -> Erasure:
    """Complete one requested erasure in one transaction (see the module docstring).

    ``interrupt`` is called after each step with its name; fault tests raise from it to show
    that a crash part-way leaves nothing half-done.
    """
    org_id, subject = erasure.org_id, erasure.subject_id
    step = interrupt or (lambda _name: None)
    with system_audit(ERASURE_ACTOR, org_id):
        async with scopes.system_scope(ERASURE_ACTOR, org_id) as session:
            row = await queries.one(
                session, queries.LOCK_ERASURE, org_id=org_id, erasure_id=erasure.id
            )
            if row.status != "requested":
                return Erasure(erasure.id, org_id, subject, row.status, row.outcome)
            hold = await _active_hold(session, org_id, subject)
            if hold is not None:
                await _refuse(session, erasure, hold)
                refused = Erasure(erasure.id, org_id, subject, "refused", None)
            else:
                refused = None
        if refused is not None:
            raise ErasureRefusedError(
                f"legal hold {hold.id} ({hold.reason}) applies to this subject; "
                "the erasure is refused",
                status_code=409,
                code="LEGAL_HOLD",
                field="subject",
                hint="release the hold first if the legal obligation has ended",
            )
        async with scopes.system_scope(ERASURE_ACTOR, org_id) as session:
            kind = await queries.scalar(
                session, queries.SUBJECT_KIND, org_id=org_id, subject_id=subject
            )
            workos = kind == "workos" or (kind is None and subject.startswith("user_"))
            tables = await _erase_operational(session, org_id, subject, workos)
            step("operational")
            retained = await _retain_records(session, org_id, subject)
            step("records")
            key = await SubjectKeyStore.destroy(session, org_id, subject)
            step("key")
            legacy = await queries.scalar(
                session, queries.LEGACY_EVENTS, org_id=org_id, subject_id=subject
            )
            certificate: dict[str, Any] = {
                "type": "carelog.erasure-certificate",
                "erasure_id": str(erasure.id),
                "org_id": str(org_id),
                "subject_id": subject,
                "requested_by": row.requested_by,
                "requested_at": row.created_at.isoformat(),
                "reason": row.reason,
                "erased_at": row.now.isoformat(),
                "audit_data_key": {
                    "key_id": None if key is None else key.key_id,
                    "destroyed": True,
                    "sealed_values": "unreadable from now on; leaves, roots and proofs unchanged",
                },
                "erased_from": tables,
                "retained": retained,
                "legacy_masked_events": int(legacy or 0),
                "not_reached": list(NOT_REACHED),
            }
            signature = {
                "alg": "ed25519",
                "key_id": signing.active_key_id,
                "signature": signing.sign_bytes(canonical_bytes(certificate, CERTIFICATE_VERSION)),
                "signed": f"canonical JSON v{CERTIFICATE_VERSION} of the certificate",
            }
            outcome = {"certificate": certificate, "signature": signature}
            await log_audit_event(
                "SUBJECT_ERASED", "data_subject", subject, None, outcome, data_subject=subject
            )
            step("certificate")
            await session.execute(
                queries.COMPLETE_ERASURE,
                {"org_id": org_id, "erasure_id": erasure.id, "outcome": _json(outcome)},
            )
    return Erasure(erasure.id, org_id, subject, "completed", outcome)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


async def _refuse(session: Unit, erasure: Erasure, hold: Any) -> None:
    outcome = {"refused": "legal_hold", "hold_id": str(hold.id), "hold_reason": hold.reason}
    await session.execute(
        queries.REFUSE_ERASURE,
        {"org_id": erasure.org_id, "erasure_id": erasure.id, "outcome": _json(outcome)},
    )
    await log_audit_event(
        "SUBJECT_ERASURE_REFUSED",
        "data_subject",
        erasure.subject_id,
        None,
        {"erasure_id": str(erasure.id), **outcome},
        data_subject=erasure.subject_id,
        outcome="denied",
    )


async def resume_pending(
    scopes: Scopes, signing: SigningKeyring, org_id: uuid.UUID
) -> list[Erasure]:
    """Complete every erasure of the org left ``requested`` (after a crash)."""
    async with scopes.system_scope(ERASURE_ACTOR, org_id) as session:
        rows = await queries.rows(session, queries.PENDING_ERASURES, org_id=org_id)
    done = []
    for r in rows:
        pending = Erasure(r.id, org_id, r.subject_id, "requested", None)
        try:
            done.append(await carry_out(scopes, signing, pending))
        except ErasureRefusedError:
            done.append(Erasure(r.id, org_id, r.subject_id, "refused", None))
    return done


async def destroy_due_records(scopes: Scopes, org_id: uuid.UUID) -> int:
    """Delete the clinical records of erased subjects whose retention has ended.

    PostgreSQL decides what is due (``destroy_after <= now()``); each deletion is audited as
    ``MEDICAL_RECORD_DELETED`` in the same transaction. Run it daily (``carelog subject
    destroy-due``); nothing else deletes clinical records.
    """
    with system_audit(ERASURE_ACTOR, org_id):
        async with scopes.system_scope(ERASURE_ACTOR, org_id) as session:
            rows = await queries.rows(session, queries.DESTROY_DUE_RECORDS, org_id=org_id)
            for r in rows:
                await log_audit_event(
                    "MEDICAL_RECORD_DELETED",
                    "medical_record",
                    str(r.id),
                    None,
                    {"meeting_id": str(r.meeting_id), "reason": "retention_ended_after_erasure"},
                    data_subject=r.subject,
                )
    return len(rows)
