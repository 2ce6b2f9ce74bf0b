"""``POST|GET|PUT /api/appointments/{meeting_id}/records``: thin HTTP glue over the service.

Each handler gets the request's unit of work (verified identity, membership checked, RLS context
set); the service decides access, seals and audits; the unit commits when the handler returns.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status

from carelog.platform.auth.dependencies import Unit
from carelog.platform.http import AUTHENTICATED, PlatformRoute, described
from carelog.platform.records import service
from carelog.platform.records.crypto import RecordKeyring
from carelog.platform.records.schemas import (
    RecordCreate,
    RecordCreated,
    RecordList,
    RecordUpdate,
    RecordUpdated,
)
from carelog.platform.services import services

ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTHENTICATED,
    **described(403, "Not an active member of the token's organization."),
    **described(404, "No such appointment, or not yours (audited as denied)."),
}


async def record_keyring(request: Request) -> RecordKeyring:
    """The runtime's keyring (from settings, or the one a test gave the runtime)."""
    return services(request).record_keyring


Keyring = Annotated[RecordKeyring, Depends(record_keyring)]
router = APIRouter(
    prefix="/api/appointments/{meeting_id}/records",
    tags=["medical records"],
    route_class=PlatformRoute,
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordCreated,
    responses=ERRORS,
    summary="Write an encrypted clinical record (the appointment's expert only)",
)
async def create_record(
    meeting_id: uuid.UUID, body: RecordCreate, unit: Unit, keyring: Keyring
) -> RecordCreated:
    return await service.create_record(unit, keyring, meeting_id, body)


@router.get(
    "",
    response_model=RecordList,
    responses={
        **ERRORS,
        **described(503, "The read could not be audited durably; nothing is returned."),
    },
    summary="Read the appointment's records (its expert, or its patient from their own org)",
)
async def list_records(meeting_id: uuid.UUID, unit: Unit, keyring: Keyring) -> RecordList:
    return await service.list_records(unit, keyring, meeting_id)


@router.put(
    "",
    response_model=RecordUpdated,
    responses={**ERRORS, **described(409, "expected_version is outdated.")},
    summary="Replace a record's content (the authoring expert only; version + 1)",
)
async def update_record(
    meeting_id: uuid.UUID, body: RecordUpdate, unit: Unit, keyring: Keyring
) -> RecordUpdated:
    return await service.update_record(unit, keyring, meeting_id, body)
