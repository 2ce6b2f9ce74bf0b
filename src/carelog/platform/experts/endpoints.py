"""HTTP surface of the expert profile: the signed-in expert's own profile only."""

from __future__ import annotations

from fastapi import APIRouter, Request

from carelog.platform.auth import Unit
from carelog.platform.experts import service
from carelog.platform.experts.schemas import ProfileIn, ProfileOut
from carelog.platform.http import AUTHENTICATED, PlatformRoute, error_responses
from carelog.platform.services import services

router = APIRouter(
    prefix="/api/expert-profile",
    tags=["expert profile"],
    route_class=PlatformRoute,
    responses=AUTHENTICATED,
)


@router.put("", summary="Create or replace my expert profile")
async def put_profile(body: ProfileIn, unit: Unit) -> ProfileOut:
    return await service.save_profile(unit, body)


@router.post(
    "/publish",
    responses=error_responses(404, 409),
    summary="Publish my profile (first time: accept the agreement)",
)
async def publish(request: Request, unit: Unit) -> ProfileOut:
    version = services(request).settings.practitioner_agreement_version
    return await service.set_published(unit, publish=True, agreement_version=version)


@router.post(
    "/unpublish",
    responses=error_responses(404, 409),
    summary="Hide my profile from the public catalogue",
)
async def unpublish(unit: Unit) -> ProfileOut:
    return await service.set_published(unit, publish=False)
