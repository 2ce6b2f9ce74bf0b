"""HTTP surface of event types: only the owning expert, in their organization."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from carelog.platform.auth import Unit
from carelog.platform.events import service
from carelog.platform.events.schemas import EventIn, EventOrderIn, EventOut, EventPatch
from carelog.platform.http import AUTHENTICATED, PlatformRoute, error_responses

router = APIRouter(
    prefix="/api/events", tags=["events"], route_class=PlatformRoute, responses=AUTHENTICATED
)


@router.post("", status_code=201, responses=error_responses(409), summary="Create an event type")
async def post_event(body: EventIn, unit: Unit) -> EventOut:
    return await service.create_event(unit, body)


@router.put("/order", responses=error_responses(404), summary="Reorder my event types")
async def put_order(body: EventOrderIn, unit: Unit) -> list[EventOut]:
    return await service.reorder_events(unit, body)


@router.patch("/{event_id}", responses=error_responses(404, 409), summary="Change an event type")
async def patch_event(event_id: uuid.UUID, body: EventPatch, unit: Unit) -> EventOut:
    return await service.update_event(unit, event_id, body)


@router.delete(
    "/{event_id}",
    status_code=204,
    responses=error_responses(404, 409),
    summary="Delete an event type without meetings",
)
async def delete_event(event_id: uuid.UUID, unit: Unit) -> Response:
    await service.delete_event(unit, event_id)
    return Response(status_code=204)
