"""Data-subject rights for an organization's owners and admins: erasure, accounting, export,
and the disclosures register."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from carelog.audit.integrity.keys import load_signing_keyring
from carelog.platform.auth.dependencies import AdminUnit
from carelog.platform.http import AUTHENTICATED, PlainText, PlatformRoute, described
from carelog.platform.subjects import erasure
from carelog.platform.subjects.identity import subject_directory

router = APIRouter(prefix="/api/subjects", tags=["subjects"], route_class=PlatformRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTHENTICATED,
    **described(403, "Not an owner or admin of the organization."),
    **described(404, "No such data subject in this organization."),
}
SubjectId = Annotated[str, Field(min_length=1, max_length=256)]


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
    signing = load_signing_keyring(request.app.state.database.settings)
    done = await erasure.carry_out(unit.scopes, signing, pending)
    outcome = done.outcome or {}
    return ErasureOut(
        erasure_id=str(done.id),
        subject_id=done.subject_id,
        status=done.status,
        certificate=outcome.get("certificate"),
        signature=outcome.get("signature"),
    )
