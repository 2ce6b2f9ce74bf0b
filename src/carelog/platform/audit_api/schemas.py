"""Response bodies of the audit endpoints (typed, so the OpenAPI schema documents them)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org_id: uuid.UUID
    workos_user_id: str
    actor_type: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    data_subject_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    metadata: dict[str, Any] | None
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime
    source: str
    schema_version: int


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class ActorCount(BaseModel):
    actor_id: str
    events: int


class ComplianceReportOut(BaseModel):
    org_id: uuid.UUID
    since: datetime
    until: datetime
    total: int
    distinct_actors: int
    phi_accesses: int
    phi_subjects: int
    denied: int
    failures: int
    by_category: dict[str, int]
    by_outcome: dict[str, int]
    by_day: dict[date, int]
    top_actors: list[ActorCount]


class AccessEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_id: str
    actor_type: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    event_id: uuid.UUID


class AccessReportOut(BaseModel):
    subject: str
    count: int
    truncated: bool
    entries: list[AccessEntryOut]
