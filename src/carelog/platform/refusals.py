"""Refused requests are evidence, and floods of them are bounded.

A clinic must see probes against its resources without the prober learning anything. Every
401/403/404 the API answers is recorded as ``UNAUTHORIZED_ACCESS_ATTEMPT`` (outcome
``denied``):

* in the caller's own trail when the caller is a known member of an organization;
* in the trail of the organization that owns the resource the request named (a meeting, event
  type or record id in the path, or the organization a token names), looked up by
  ``app.resource_owner_org`` (migration 0010), whose answer only ever reaches the audit event.

Nothing the attacker typed is copied except what the audit context bounds already (address,
a 512-character user agent): the event names the route *template*, method, status and error
code. Unauthenticated failures are rate limited per client address (``limits``, a maintained
library, moving window in memory): past the limit the caller gets 429 with ``Retry-After`` and
nothing more is recorded, so an outsider cannot fill a tenant's trail. The same limiter guards
anonymous booking and audit exports.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from carelog.audit import log_audit_event
from carelog.audit.context import audit_context, snapshot
from carelog.db.session import Scopes
from carelog.platform.errors import ApiError
from carelog.platform.services import services

ACTION = "UNAUTHORIZED_ACCESS_ATTEMPT"
ANONYMOUS_ACTOR = "system:unauthenticated"
#: Path parameters that name a tenant's resource: the table that owns it, its resource type.
RESOURCE_PARAMS = {
    "meeting_id": ("meetings", "appointment"),
    "event_id": ("events", "event_type"),
    "record_id": ("records", "medical_record"),
}
LIMITS: dict[str, RateLimitItem] = {
    "auth_failure": parse("20/minute"),
    "anonymous_booking": parse("30/minute"),
    "export": parse("10/minute"),
}


class RateLimits:
    """Per-client (or per-user) moving windows; one instance per app."""

    def __init__(self, limits: dict[str, RateLimitItem] | None = None) -> None:
        self.limits = dict(LIMITS if limits is None else limits)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, name: str, key: str) -> int | None:
        """None if allowed, else the seconds to wait (for ``Retry-After``)."""
        item = self.limits[name]
        if self._limiter.hit(item, name, key):
            return None
        reset, _ = self._limiter.get_window_stats(item, name, key)
        return max(1, math.ceil(reset - time.time()))


class RateLimitedError(ApiError):
    """429 with the seconds to wait (the error handler sends them as ``Retry-After``)."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(
            f"too many {what}; try again in {retry_after} s",
            status_code=429,
            code="RATE_LIMITED",
            hint="wait for Retry-After seconds",
        )
        self.retry_after = retry_after


def enforce(request: Request, name: str, key: str, what: str) -> None:
    """Count one use of ``name`` by ``key``; raise 429 past the limit."""
    retry = rate_limits(request).hit(name, key)
    if retry is not None:
        raise RateLimitedError(what, retry)


def rate_limits(request: Request) -> RateLimits:
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is None:
        limits = RateLimits()
        request.app.state.rate_limits = limits
    return limits


def client_key(request: Request) -> str:
    ctx = snapshot()
    return (ctx.ip_address if ctx else None) or "unknown"


#: The organization owning a resource, whoever asks (a SECURITY DEFINER function of the
#: schema: it names the owner and nothing else, so a refusal lands on the owner's trail).
_RESOURCE_OWNER_ORG = sa.text("select app.resource_owner_org(:kind, :id)")


async def _owner_of(scopes: Scopes, kind: str, value: object) -> uuid.UUID | None:
    try:
        resource = uuid.UUID(str(value))
    except ValueError:
        return None
    async with scopes.public_scope() as session:
        found = await session.scalar(_RESOURCE_OWNER_ORG, {"kind": kind, "id": resource})
    return None if found is None else uuid.UUID(str(found))


async def record_refusal(request: Request, status: int, code: str | None) -> int | None:
    """Record one refusal; returns seconds to wait when the caller is over its limit (the
    handler then answers 429 instead)."""
    if not request.url.path.startswith(("/api/", "/audit")):
        return None
    identity = getattr(request.state, "identity", None)
    claims = getattr(request.state, "claims", None)
    if identity is None and claims is None:
        retry = rate_limits(request).hit("auth_failure", client_key(request))
        if retry is not None:
            return retry
    scopes: Scopes = services(request).scopes
    route = request.scope.get("route")
    metadata: dict[str, Any] = {
        "method": request.method,
        "route": getattr(route, "path", "(unmatched)"),
        "status": status,
        "code": code,
    }
    resource_type, resource_id, owner = "security", None, None
    for param, (table, kind) in RESOURCE_PARAMS.items():
        if param in request.path_params:
            owner = await _owner_of(scopes, table, request.path_params[param])
            if owner is not None:
                resource_type, resource_id = kind, str(request.path_params[param])
            break
    if identity is not None:
        await log_audit_event(ACTION, resource_type, resource_id, None, metadata, outcome="denied")
        if owner is not None and owner != identity.org_id:
            await log_audit_event(
                ACTION,
                resource_type,
                resource_id,
                None,
                metadata,
                outcome="denied",
                owner_org=owner,
            )
        return None
    actor_id = ANONYMOUS_ACTOR
    if claims is not None:
        actor_id = claims.user_id
        if owner is None and claims.org is not None:
            owner = await _owner_of(scopes, "organizations", claims.org)
    if owner is None:
        return None
    ctx = snapshot()
    with audit_context(
        actor_id=actor_id,
        org_id=owner,
        ip_address=ctx.ip_address if ctx else None,
        user_agent=ctx.user_agent if ctx else None,
        request_id=ctx.request_id if ctx else None,
    ):
        await log_audit_event(ACTION, resource_type, resource_id, None, metadata, outcome="denied")
    return None
