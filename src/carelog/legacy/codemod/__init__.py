"""Source rewrites that move code written against deprecated APIs onto carelog."""

from carelog.legacy.codemod.audit_api import (
    DEFAULT_OLD_MODULES,
    AuditApiCodemod,
    RewriteResult,
    Summary,
    rewrite_paths,
    rewrite_source,
)

__all__ = [
    "DEFAULT_OLD_MODULES",
    "AuditApiCodemod",
    "RewriteResult",
    "Summary",
    "rewrite_paths",
    "rewrite_source",
]
