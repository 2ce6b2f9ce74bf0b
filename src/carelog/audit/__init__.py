"""carelog's audit core: one API, automatic context, durable, minimised, domain-agnostic.

from carelog.audit import log_audit_event
await log_audit_event(action, resource_type, resource_id, changes, metadata)
"""

from carelog.audit.api import (
    AuditService,
    audit_service,
    configure_audit,
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

__all__ = [
    "ActionSpec",
    "AuditCatalog",
    "AuditContext",
    "AuditContextMiddleware",
    "AuditInputError",
    "AuditService",
    "AuditUnavailableError",
    "MissingAuditContextError",
    "TrustedProxies",
    "audit_context",
    "audit_service",
    "bind_actor",
    "configure_audit",
    "log_audit_event",
    "log_audit_event_sync",
]
