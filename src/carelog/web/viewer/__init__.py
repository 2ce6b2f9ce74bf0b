"""The audit viewer: server-rendered pages over the audit log for an organization's admins."""

from carelog.web.viewer.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
