"""HTTP surface of meetings: anonymous booking of free events, cancellation by host or guest."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from carelog.db.session import Scopes
from carelog.platform.auth import Unit
from carelog.platform.common import get_scopes
from carelog.platform.http import AUTHENTICATED, PUBLIC, PlatformRoute, error_responses
from carelog.platform.meetings import service
from carelog.platform.meetings.schemas import BookingIn, MeetingOut
from carelog.platform.refusals import client_key, enforce

router = APIRouter(prefix="/api/meetings", tags=["meetings"], route_class=PlatformRoute)


@router.post(
    "",
    status_code=201,
    responses={**PUBLIC, **error_responses(404, 409)},
    summary="Book a free event (public, no sign-in)",
)
async def book(
    request: Request, body: BookingIn, scopes: Annotated[Scopes, Depends(get_scopes)]
) -> MeetingOut:
    enforce(request, "anonymous_booking", client_key(request), "bookings from this address")
    return await service.book_free(scopes, body)


@router.post(
    "/{meeting_id}/cancel",
    responses={**AUTHENTICATED, **error_responses(404, 409)},
    summary="Cancel a meeting (its expert or its guest)",
)
async def cancel(meeting_id: uuid.UUID, unit: Unit) -> MeetingOut:
    return await service.cancel(unit, meeting_id)
