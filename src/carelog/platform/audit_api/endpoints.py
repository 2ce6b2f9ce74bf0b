"""The audit trail for an organization's owners and admins: search, export, reports.

Platform glue over ``carelog.audit``: the request's unit of work supplies the session (RLS lets
only owners and admins of the org read ``audit_logs``; the explicit 403 here says so clearly
instead of answering with an empty list). Reading the trail is itself recorded
(AUDIT_LOG_QUERIED, AUDIT_LOG_EXPORTED, COMPLIANCE_REPORT_GENERATED), because who looked at
whose history is what an auditor asks next.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from carelog.audit import trail_reads
from carelog.audit.catalog import AuditCatalog, Outcome
from carelog.audit.export import CLOSE_SECONDS, ExportFormat, export_audit_logs
from carelog.audit.filters import DEFAULT_LIMIT, MAX_LIMIT, AuditFilters
from carelog.audit.report import access_report, compliance_report
from carelog.platform.audit_api import service as audit_reads
from carelog.platform.audit_api.schemas import (
    AccessEntryOut,
    AccessReportOut,
    ActorCount,
    AuditEventPage,
    ComplianceReportOut,
)
from carelog.platform.auth.dependencies import AdminUnit, StreamingUnit, ensure_admin
from carelog.platform.http import AUTHENTICATED, PlainText, PlatformRoute, described
from carelog.platform.refusals import enforce
from carelog.platform.services import services
from carelog.platform.streaming import DecoupledStream

router = APIRouter(prefix="/api/audit", tags=["audit"], route_class=PlatformRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTHENTICATED,
    **described(403, "Not an owner or admin of the organization."),
    **described(422, "Invalid filter, date range or cursor."),
}
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "workos": "application/json"}
MAX_ACCESS_ENTRIES = 10_000


async def audit_filters(
    start: Annotated[datetime | None, Query(description="Inclusive, timezone-aware.")] = None,
    end: Annotated[datetime | None, Query(description="Exclusive, timezone-aware.")] = None,
    action: Annotated[list[PlainText] | None, Query(description="Repeatable.")] = None,
    resource_type: Annotated[list[PlainText] | None, Query(description="Repeatable.")] = None,
    resource_id: Annotated[PlainText | None, Query(max_length=256)] = None,
    actor_id: Annotated[PlainText | None, Query(max_length=256)] = None,
    data_subject_id: Annotated[PlainText | None, Query(max_length=256)] = None,
    outcome: Annotated[list[Outcome] | None, Query(description="Repeatable.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> AuditFilters:
    """Every filter of :class:`AuditFilters` as query parameters (all ANDed)."""
    return AuditFilters(
        start=start,
        end=end,
        actions=tuple(action or ()),
        resource_types=tuple(resource_type or ()),
        resource_id=resource_id,
        actor_id=actor_id,
        data_subject_id=data_subject_id,
        outcomes=tuple(outcome or ()),
        limit=limit,
    )


Filters = Annotated[AuditFilters, Depends(audit_filters)]


def _catalog(request: Request) -> AuditCatalog:
    return services(request).catalog


@router.get("/events", response_model=AuditEventPage, responses=ERRORS, summary="Search")
async def list_events(
    unit: AdminUnit,
    filters: Filters,
    cursor: Annotated[PlainText | None, Query(max_length=64, description="next_cursor")] = None,
) -> Response:
    """One page, newest first; pass ``next_cursor`` back (with the same filters) for the next.

    The body is the page PostgreSQL rendered (``AuditEventPage`` documents it, and a test holds
    the two to the same shape): validating and serialising 50 events in Python was a third of
    the request's CPU."""
    page = await audit_reads.search(unit, filters, cursor)
    return Response(page.to_json(), media_type="application/json")


@router.get(
    "/export",
    responses={**ERRORS, 200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
    response_class=StreamingResponse,
    summary="Export (streamed)",
)
async def export_events(
    request: Request,
    unit: StreamingUnit,
    filters: Filters,
    format: Annotated[Literal["jsonl", "csv", "workos"], Query()] = "jsonl",
    reason: Annotated[PlainText | None, Query(min_length=1, max_length=1000)] = None,
) -> StreamingResponse:
    """The whole filtered trail in constant memory. Filters are checked against the catalog
    and the export is recorded (AUDIT_LOG_EXPORT_STARTED, durable) before the response starts,
    so a refused or unrecordable export answers with an error instead of data; the end is
    recorded as AUDIT_LOG_EXPORTED or AUDIT_LOG_EXPORT_ABORTED. The unit of work stays open
    until the last byte is sent."""
    ensure_admin(unit)
    enforce(request, "export", unit.identity.user_id, "exports")
    fmt: ExportFormat = format
    chunks = export_audit_logs(
        unit.session, unit.identity.org_id, unit.identity.user_id, filters, fmt, reason
    )
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""

    stream = DecoupledStream(chunks, first=first, close_seconds=CLOSE_SECONDS)
    unit.close_on_exit(stream.aclose)  # closed before the unit ends, even if never sent
    extension = "json" if fmt == "workos" else fmt
    return StreamingResponse(
        aiter(stream),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="audit-log.{extension}"'},
    )


@router.get("/report", response_model=ComplianceReportOut, responses=ERRORS, summary="Report")
async def report(
    request: Request, unit: AdminUnit, since: datetime, until: datetime
) -> ComplianceReportOut:
    """Totals for the period, by category, outcome and day, top actors, PHI and denials."""
    AuditFilters(start=since, end=until)  # same validation as the filters (aware, ordered)
    result = await compliance_report(
        unit.session, unit.identity.org_id, since, until, _catalog(request)
    )
    await trail_reads.record_compliance_report(since, until)
    return ComplianceReportOut(
        org_id=result.org_id,
        since=result.start,
        until=result.end,
        total=result.total,
        distinct_actors=result.distinct_actors,
        phi_accesses=result.phi_accesses,
        phi_subjects=result.phi_subjects,
        denied=result.denied,
        failures=result.failures,
        by_category=result.by_category,
        by_outcome=result.by_outcome,
        by_day=result.by_day,
        top_actors=[ActorCount(actor_id=a, events=n) for a, n in result.top_actors],
    )


@router.get(
    "/access-report", response_model=AccessReportOut, responses=ERRORS, summary="Access report"
)
async def subject_access_report(
    unit: AdminUnit,
    subject: Annotated[
        PlainText, Query(min_length=1, max_length=256, description="Data subject id")
    ],
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ACCESS_ENTRIES)] = 1000,
) -> AccessReportOut:
    """Who accessed (or tried to access) this person's data, newest first (HIPAA accounting)."""
    entries = await access_report(
        unit.session, unit.identity.org_id, subject, since, until, limit=limit + 1
    )
    await trail_reads.record_access_report(subject, min(len(entries), limit))
    return AccessReportOut(
        subject=subject,
        count=min(len(entries), limit),
        truncated=len(entries) > limit,
        entries=[AccessEntryOut.model_validate(e) for e in entries[:limit]],
    )


@router.get(
    "/verify",
    responses={**ERRORS, 200: {"description": "The verification report (ok, counts, problems)."}},
    summary="Verify the trail's integrity",
)
async def verify(
    request: Request, unit: AdminUnit, since: datetime | None = None
) -> dict[str, Any]:
    """Recompute the org's Merkle tree and check every checkpoint signature and link.

    The integrity modules are imported here, not at module load: a fault in them then fails
    this one endpoint instead of taking every audit endpoint down with it.
    """
    from carelog.audit.integrity.verify import verify_org

    keyring = services(request).verifying_keys
    report = await verify_org(unit.session, unit.identity.org_id, keyring, since=since)
    result = report.to_json_dict()
    # Who checked the trail, and what they were told, is part of the trail.
    await trail_reads.record_verification(bool(result.get("ok")), since=since)
    return result
