"""carelog's audit core: one API, automatic context, durable, minimised, domain-agnostic.

Everything a library user needs is importable from here::

    from carelog.audit import log_audit_event, get_audit_logs, AuditFilters

    await log_audit_event(action, resource_type, resource_id, changes, metadata)   # write
    page = await get_audit_logs(session, org_id, AuditFilters(actions=("X",)))     # read
    trail = await resource_trail(session, org_id, "meeting", meeting_id)           # trails
    await export_audit_logs(...); await compliance_report(...)                     # export, report
    report = await verify_org(session, org_id, keyring)                            # verify

``verify_org`` and ``VerifyReport`` are loaded on first use, so a fault in the integrity
modules fails verification only, never the write path.
"""

from typing import TYPE_CHECKING, Any

from carelog.audit.api import (
    AuditService,
    audit_service,
    configure_audit,
    installed_audit,
    log_audit_event,
    log_audit_event_sync,
)
from carelog.audit.catalog import ActionSpec, AuditCatalog
from carelog.audit.context import (
    AuditContext,
    AuditContextMiddleware,
    TrustedProxies,
    audit_context,
    bind_actor,
)
from carelog.audit.errors import AuditInputError, AuditUnavailableError, MissingAuditContextError
from carelog.audit.export import ExportReceipt, export_audit_logs, stream_export
from carelog.audit.filters import AuditFilters, Cursor
from carelog.audit.query import (
    AuditPage,
    AuditRecord,
    get_audit_logs,
    resource_trail,
    stream_records,
    user_activity,
)
from carelog.audit.report import (
    AccessEntry,
    ComplianceReport,
    access_report,
    compliance_report,
    stream_access_report,
)

if TYPE_CHECKING:
    from carelog.audit.integrity.verify import VerifyReport, verify_org


def __getattr__(name: str) -> Any:
    if name in ("verify_org", "VerifyReport"):
        from carelog.audit.integrity import verify

        return getattr(verify, name)
    raise AttributeError(f"module 'carelog.audit' has no attribute {name!r}")


__all__ = [
    "AccessEntry",
    "ActionSpec",
    "AuditCatalog",
    "AuditContext",
    "AuditContextMiddleware",
    "AuditFilters",
    "AuditInputError",
    "AuditPage",
    "AuditRecord",
    "AuditService",
    "AuditUnavailableError",
    "ComplianceReport",
    "Cursor",
    "ExportReceipt",
    "MissingAuditContextError",
    "TrustedProxies",
    "VerifyReport",
    "access_report",
    "audit_context",
    "audit_service",
    "bind_actor",
    "compliance_report",
    "configure_audit",
    "export_audit_logs",
    "get_audit_logs",
    "installed_audit",
    "log_audit_event",
    "log_audit_event_sync",
    "resource_trail",
    "stream_access_report",
    "stream_export",
    "stream_records",
    "user_activity",
    "verify_org",
]
