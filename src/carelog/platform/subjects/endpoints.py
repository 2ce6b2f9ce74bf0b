"""Data-subject rights for an organization's owners and admins: erasure, accounting, export,
and the disclosures register."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from carelog.platform.auth.dependencies import AdminUnit
from carelog.platform.http import AUTHENTICATED, PlatformRoute, described
from carelog.platform.records.endpoints import Keyring
from carelog.platform.services import services
from carelog.platform.subjects import service
from carelog.platform.subjects.schemas import (
    DisclosureIn,
    DisclosureOut,
    ErasureIn,
    ErasureOut,
    SubjectId,
)

router = APIRouter(prefix="/api/subjects", tags=["subjects"], route_class=PlatformRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTHENTICATED,
    **described(403, "Not an owner or admin of the organization."),
    **described(404, "No such data subject in this organization."),
}


@router.post(
    "/{subject_id}/erasure",
    responses={**ERRORS, **described(409, "A legal hold applies; nothing was erased.")},
    summary="Erase a data subject (GDPR Art. 17), keeping the audit trail verifiable",
)
async def erase(
    subject_id: SubjectId, body: ErasureIn, unit: AdminUnit, request: Request
) -> ErasureOut:
    """Erases contact details and free text, destroys the subject's audit data key and writes
    a signed erasure certificate into the trail; refused (409) under a legal hold."""
    signing = services(request).signing_keyring
    done = await service.erase(unit, signing, subject_id, body.reason)
    outcome = done.outcome or {}
    return ErasureOut(
        erasure_id=str(done.id),
        subject_id=done.subject_id,
        status=done.status,
        certificate=outcome.get("certificate"),
        signature=outcome.get("signature"),
    )


# --------------------------------------------------------------------------- accounting


@router.get(
    "/{subject_id}/accounting",
    responses=ERRORS,
    summary="Accounting of disclosures and access history (HIPAA §164.528, GDPR Art. 15)",
)
async def accounting(subject_id: SubjectId, unit: AdminUnit, request: Request) -> dict[str, Any]:
    """Six years of accesses and disclosures, with who (name and role), what, purpose and
    outcome. The printable document is the viewer page /audit/subjects/{id}/accounting."""
    catalog = services(request).catalog
    return (await service.generate_accounting(unit, catalog, subject_id, via="api")).to_json()


@router.post(
    "/{subject_id}/disclosures",
    status_code=201,
    responses=ERRORS,
    summary="Record a disclosure outside the platform (append-only register)",
)
async def disclose(subject_id: SubjectId, body: DisclosureIn, unit: AdminUnit) -> DisclosureOut:
    disclosure_id = await service.disclose(
        unit,
        subject_id,
        recipient=body.recipient,
        purpose=body.purpose,
        description=body.description,
        disclosed_at=body.disclosed_at,
    )
    return DisclosureOut(disclosure_id=disclosure_id)


@router.get(
    "/{subject_id}/export",
    responses={**ERRORS, **described(503, "The export could not be recorded; nothing given.")},
    summary="Everything held about the subject, one bundle (GDPR Art. 15/20); audited",
)
async def export(
    subject_id: SubjectId, unit: AdminUnit, request: Request, keyring: Keyring
) -> dict[str, Any]:
    return await service.export(unit, services(request).audit, keyring, subject_id)
