"""Every HTTP router of the platform, in one list the web app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from carelog.platform.audit_api import endpoints as audit_api_endpoints
from carelog.platform.events import endpoints as events_endpoints
from carelog.platform.experts import endpoints as experts_endpoints
from carelog.platform.meetings import endpoints as meetings_endpoints
from carelog.platform.payments import endpoints as payments_endpoints
from carelog.platform.records import endpoints as records_endpoints
from carelog.platform.schedule import endpoints as schedule_endpoints
from carelog.platform.subjects import endpoints as subjects_endpoints

ROUTERS: list[APIRouter] = [
    audit_api_endpoints.router,
    events_endpoints.router,
    experts_endpoints.router,
    meetings_endpoints.router,
    payments_endpoints.router,
    records_endpoints.router,
    schedule_endpoints.router,
    subjects_endpoints.router,
]
