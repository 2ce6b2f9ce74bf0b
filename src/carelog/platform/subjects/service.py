"""Data-subject rights as an organization's owner or admin asks for them (API and viewer).

Each entry point takes the request's :class:`~carelog.platform.auth.dependencies.RequestUnit`:
the org, the caller (who is named as the requester or recorder) and the scopes come from it,
never from loose arguments an endpoint could mix up. The work itself is done by the modules the
CLI shares (:mod:`.erasure`, :mod:`.accounting`, :mod:`.export`), which open their own system
scope pinned to the unit's organization where the caller's RLS view is not enough.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from carelog.audit import log_audit_event
from carelog.audit.api import AuditService
from carelog.audit.catalog import AuditCatalog
from carelog.audit.integrity.checkpoint import SigningKeyring
from carelog.platform.auth.dependencies import RequestUnit
from carelog.platform.records.crypto import RecordKeyring
from carelog.platform.subjects import erasure
from carelog.platform.subjects.accounting import (
    ACCOUNTING_ACTOR,
    Accounting,
    build_accounting,
    record_disclosure,
)
from carelog.platform.subjects.export import export_subject
from carelog.platform.subjects.identity import subject_directory


async def erase(
    unit: RequestUnit, signing: SigningKeyring, subject_id: str, reason: str
) -> erasure.Erasure:
    """Record the request (committed first), then carry it out; a legal hold refuses it (409)."""
    pending = await erasure.request_erasure(
        unit.scopes,
        subject_directory(),
        unit.identity.org_id,
        subject=subject_id,
        reason=reason,
        requested_by=unit.identity.user_id,
    )
    return await erasure.carry_out(unit.scopes, signing, pending)


async def generate_accounting(
    unit: RequestUnit, catalog: AuditCatalog, subject_id: str, *, via: str
) -> Accounting:
    """Shared by the API and the viewer page: build, then record that it was generated."""
    org = unit.identity.org_id
    async with unit.scopes.system_scope(ACCOUNTING_ACTOR, org) as session:
        result = await build_accounting(session, catalog, org, subject_id)
    await log_audit_event(
        "SUBJECT_ACCOUNTING_GENERATED",
        "data_subject",
        subject_id,
        None,
        {"entries": len(result.access), "disclosures": len(result.disclosures), "via": via},
        data_subject=subject_id,
    )
    return result


async def disclose(
    unit: RequestUnit,
    subject_id: str,
    *,
    recipient: str,
    purpose: str,
    description: str,
    disclosed_at: dt.datetime,
) -> uuid.UUID:
    """Append a disclosure to the register, in the caller's unit, recorded by the caller."""
    return await record_disclosure(
        unit.session,
        unit.identity.org_id,
        subject_id,
        unit.identity.user_id,
        recipient=recipient,
        purpose=purpose,
        description=description,
        disclosed_at=disclosed_at,
    )


async def export(
    unit: RequestUnit, audit: AuditService, keyring: RecordKeyring, subject_id: str
) -> dict[str, Any]:
    """Everything held about the subject, requested by the caller (audited, fail-closed)."""
    return await export_subject(
        unit.scopes, audit, keyring, unit.identity.org_id, subject_id, unit.identity.user_id
    )
