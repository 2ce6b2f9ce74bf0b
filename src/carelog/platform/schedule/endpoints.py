"""HTTP surface of the schedule: owner-only, in the caller's organization."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from carelog.platform.auth import Unit
from carelog.platform.http import AUTHENTICATED, INT4_MAX, PlatformRoute, error_responses
from carelog.platform.schedule import service
from carelog.platform.schedule.schemas import BlockedDateIn, BlockedDateOut, ScheduleIn, ScheduleOut

router = APIRouter(
    prefix="/api/schedule", tags=["schedule"], route_class=PlatformRoute, responses=AUTHENTICATED
)


@router.put("", summary="Replace the timezone and weekly availabilities")
async def put_schedule(body: ScheduleIn, unit: Unit) -> ScheduleOut:
    return await service.save_schedule(unit, body)


@router.post(
    "/blocked-dates",
    status_code=201,
    responses=error_responses(409),
    summary="Block a whole day",
)
async def post_blocked_date(body: BlockedDateIn, unit: Unit) -> BlockedDateOut:
    return await service.add_blocked_date(unit, body)


@router.delete(
    "/blocked-dates/{blocked_id}",
    status_code=204,
    responses=error_responses(404),
    summary="Unblock a day",
)
async def delete_blocked_date(
    blocked_id: Annotated[int, Path(ge=1, le=INT4_MAX)], unit: Unit
) -> Response:
    await service.remove_blocked_date(unit, blocked_id)
    return Response(status_code=204)
