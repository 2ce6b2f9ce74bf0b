"""Data-subject rights for an organization's owners and admins: erasure, accounting, export,
and the disclosures register."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from carelog.audit import log_audit_event
from carelog.platform.auth.dependencies import AdminUnit, RequestUnit
from carelog.platform.http import (
    AUTHENTICATED,
    PlainText,
    PlatformRoute,
    described,
    no_surrogates,
)
from carelog.platform.records.endpoints import Keyring
from carelog.platform.services import services
from carelog.platform.subjects import erasure
from carelog.platform.subjects.accounting import (
    ACCOUNTING_ACTOR,
    Accounting,
    build_accounting,
    record_disclosure,
)
from carelog.platform.subjects.export import export_subject
from carelog.platform.subjects.identity import subject_directory

router = APIRouter(prefix="/api/subjects", tags=["subjects"], route_class=PlatformRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTHENTICATED,
    **described(403, "Not an owner or admin of the organization."),
    **described(404, "No such data subject in this organization."),
}
#: A subject id as clients send it: bounded, and storable (no NUL, no unpaired surrogate), so a
#: hostile path segment is a 422 at the edge, never a database error.
SubjectId = Annotated[PlainText, AfterValidator(no_surrogates), Field(min_length=1, max_length=256)]


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(
        min_length=1, max_length=2000, description="the request (e.g. 'Art. 17 e-mail of ...')"
    )


class ErasureOut(BaseModel):
    erasure_id: str
    subject_id: str
    status: str
    certificate: dict[str, Any] | None = None
    signature: dict[str, Any] | None = None


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
    org = unit.identity.org_id
    pending = await erasure.request_erasure(
        unit.scopes,
        subject_directory(),
        org,
        subject=subject_id,
        reason=body.reason,
        requested_by=unit.identity.user_id,
    )
    signing = services(request).signing_keyring
    done = await erasure.carry_out(unit.scopes, signing, pending)
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
    return (await generate_accounting(request, unit, subject_id, via="api")).to_json()


async def generate_accounting(
    request: Request, unit: RequestUnit, subject_id: str, *, via: str
) -> Accounting:
    """Shared by the API and the viewer page: build, then record that it was generated."""
    org = unit.identity.org_id
    async with unit.scopes.system_scope(ACCOUNTING_ACTOR, org) as session:
        result = await build_accounting(session, services(request).catalog, org, subject_id)
    await log_audit_event(
        "SUBJECT_ACCOUNTING_GENERATED",
        "data_subject",
        subject_id,
        None,
        {"entries": len(result.access), "disclosures": len(result.disclosures), "via": via},
        data_subject=subject_id,
    )
    return result


class DisclosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: PlainText = Field(min_length=1, max_length=500)
    purpose: PlainText = Field(min_length=1, max_length=500)
    description: PlainText = Field(min_length=1, max_length=2000)
    disclosed_at: AwareDatetime


class DisclosureOut(BaseModel):
    disclosure_id: uuid.UUID


@router.post(
    "/{subject_id}/disclosures",
    status_code=201,
    responses=ERRORS,
    summary="Record a disclosure outside the platform (append-only register)",
)
async def disclose(subject_id: SubjectId, body: DisclosureIn, unit: AdminUnit) -> DisclosureOut:
    disclosure_id = await record_disclosure(
        unit.session,
        unit.identity.org_id,
        subject_id,
        unit.identity.user_id,
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
    return await export_subject(
        unit.scopes,
        services(request).audit,
        keyring,
        unit.identity.org_id,
        subject_id,
        unit.identity.user_id,
    )
