"""Who read the trail is part of the trail: the events every read of the audit log leaves.

One definition for every surface that reads it (the JSON API, the viewer and the CLI), so a
compliance officer finds the same action and the same metadata keys whichever way the trail
was read, with ``via`` naming the surface when it is not the API. Each function records in the
current audit context (the request's, or the ``audit_context`` a CLI command opens) through
:func:`~carelog.audit.api.log_audit_event`, so a read is on the trail before its result is
shown, and the events' shape is checked by the catalog like any other.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from carelog.audit.api import log_audit_event
from carelog.audit.filters import AuditFilters

QUERIED = "AUDIT_LOG_QUERIED"
REPORTED = "COMPLIANCE_REPORT_GENERATED"
VERIFIED = "AUDIT_LOG_VERIFIED"


async def _record(
    action: str,
    resource_type: str,
    metadata: dict[str, Any],
    via: str | None,
    data_subject: str | None = None,
) -> None:
    if via:
        metadata["via"] = via
    await log_audit_event(action, resource_type, None, None, metadata, data_subject=data_subject)


async def record_page_read(
    filters: AuditFilters, returned: int, *, paged: bool, via: str | None = None
) -> None:
    """A page of events was read (``paged``: not the first page of the search)."""
    metadata = {"filters": filters.to_json_dict(), "returned": returned, "paged": paged}
    await _record(QUERIED, "compliance", metadata, via)


async def record_event_read(event_id: uuid.UUID, *, via: str | None = None) -> None:
    """One event was opened by its id."""
    await _record(QUERIED, "compliance", {"event_id": str(event_id), "returned": 1}, via)


async def record_compliance_report(
    start: datetime, end: datetime, *, via: str | None = None
) -> None:
    """The compliance summary of a period was generated."""
    metadata = {"kind": "compliance", "since": start.isoformat(), "until": end.isoformat()}
    await _record(REPORTED, "compliance", metadata, via)


async def record_access_report(subject_id: str, entries: int, *, via: str | None = None) -> None:
    """Who accessed one person's data was listed: on that person's own trail, too."""
    metadata = {"kind": "access", "entries": entries}
    await _record(REPORTED, "compliance", metadata, via, data_subject=subject_id)


async def record_verification(
    ok: bool, *, since: datetime | None = None, via: str | None = None
) -> None:
    """The trail's integrity was checked, and what the checker was told."""
    metadata = {"ok": ok, "since": since.isoformat() if since else None}
    await _record(VERIFIED, "audit_log", metadata, via)
