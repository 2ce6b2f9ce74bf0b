"""Audit errors a caller can act on. Storage trouble is never one of them (see writer.py)."""

from __future__ import annotations

from carelog.core.errors import CarelogError


class AuditInputError(CarelogError):
    """The event itself is wrong (unknown action, oversized metadata...): a programming error
    that must surface at once, not be dropped."""


class MissingAuditContextError(CarelogError):
    """log_audit_event was called with no actor/organization in context."""


class AuditUnavailableError(CarelogError):
    """A fail-closed event could be made durable nowhere: the guarded read must be refused."""

    exit_code = 3
