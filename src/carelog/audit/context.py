"""Who is acting, for which organization, from where: captured once, never passed by hand.

The legacy platform asked each caller for the user, IP and user agent (and later trusted whatever
``X-Forwarded-For`` said). Here an ASGI middleware records the client address, user agent and
request id per request, the authentication layer binds the actor and organization, and
``audit_context(...)`` does the same for webhooks, jobs and scripts. Everything lives in a
``ContextVar`` reset with its token, so nothing leaks from one request or task to the next.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from carelog.audit.errors import AuditInputError, MissingAuditContextError
from carelog.core.ids import parse_uuid

ActorType = Literal["user", "system"]
SYSTEM_PREFIX = "system:"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class AuditContext:
    """The automatic part of every event. Mutable only through :func:`bind_actor`."""

    actor_id: str | None = None
    org_id: uuid.UUID | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Who really acts when an admin impersonates ``actor_id`` (and the session's id): both are
    #: written into every event's metadata, so the row format stays what it is.
    impersonator: str | None = None
    session_id: str | None = None

    @property
    def actor_type(self) -> ActorType:
        return "system" if (self.actor_id or "").startswith(SYSTEM_PREFIX) else "user"

    def require(self) -> tuple[str, uuid.UUID]:
        if not self.actor_id or self.org_id is None:
            raise MissingAuditContextError(
                "no actor and organization in the audit context",
                hint="call inside a request (AuditContextMiddleware + authentication) or wrap "
                "the code in audit_context(actor_id=..., org_id=...)",
            )
        return self.actor_id, self.org_id


_current: ContextVar[AuditContext | None] = ContextVar("carelog_audit_context", default=None)


def current_context() -> AuditContext:
    ctx = _current.get()
    if ctx is None:
        raise MissingAuditContextError(
            "log_audit_event was called outside any audit context",
            hint="wrap webhooks, jobs and scripts in audit_context(actor_id='system:<name>', "
            "org_id=...); requests get one from AuditContextMiddleware",
        )
    return ctx


def _org(org_id: uuid.UUID | str | None) -> uuid.UUID | None:
    if org_id is None:
        return None
    return parse_uuid(org_id, field="org_id", error=AuditInputError)


def _actor(actor_id: str | None, field: str = "actor_id") -> str | None:
    if actor_id is None:
        return None
    if not isinstance(actor_id, str) or not actor_id.strip() or len(actor_id) > 256:
        raise AuditInputError(
            f"{field} must be a non-empty id of at most 256 characters", field=field
        )
    if actor_id.startswith(SYSTEM_PREFIX) and len(actor_id) == len(SYSTEM_PREFIX):
        raise AuditInputError("system actors are named 'system:<name>'", field=field)
    return actor_id


def _one_actor(actor_id: str | None, actor: str | None) -> str:
    """``actor`` is the first release's spelling of ``actor_id``: code written against it keeps
    running, and giving both (or neither) is refused rather than one silently winning."""
    if (actor_id is None) == (actor is None):
        raise AuditInputError(
            "give the actor once, as actor_id",
            field="actor_id",
            hint="audit_context(actor_id='system:<name>' or a WorkOS user id, org_id=...)",
        )
    chosen = _actor(actor_id) if actor is None else _actor(actor, "actor")
    assert chosen is not None
    return chosen


def normalise_ip(value: str | None) -> str | None:
    """A valid address in compressed form, or None: garbage never reaches the inet column."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip().split("%")[0]))
    except ValueError:
        return None


@contextmanager
def audit_context(
    *,
    actor_id: str | None = None,
    org_id: uuid.UUID | str,
    ip_address: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
    actor: str | None = None,
) -> Iterator[AuditContext]:
    """Set the audit context for a webhook, job or script (works in sync and async code).

    ``actor_id`` is a WorkOS user id or a system actor ``system:<name>``; ``actor`` is accepted
    as its earlier spelling."""
    ctx = AuditContext(
        actor_id=_one_actor(actor_id, actor),
        org_id=_org(org_id),
        ip_address=normalise_ip(ip_address),
        user_agent=(user_agent or None) and user_agent[:512],
        request_id=request_id if request_id and _REQUEST_ID.match(request_id) else uuid.uuid4().hex,
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def bind_actor(
    actor_id: str,
    org_id: uuid.UUID | str,
    *,
    impersonator: str | None = None,
    session_id: str | None = None,
) -> AuditContext:
    """Called by authentication once the identity is verified, inside the request's context."""
    ctx = current_context()
    ctx.actor_id = _actor(actor_id)
    ctx.org_id = _org(org_id)
    ctx.impersonator = _actor(impersonator, "impersonator")
    ctx.session_id = session_id[:256] if impersonator and session_id else None
    return ctx


def snapshot() -> AuditContext | None:
    """A copy of the current context (for handing work to another task or thread)."""
    ctx = _current.get()
    return None if ctx is None else replace(ctx)


# --------------------------------------------------------------------------- client address


class TrustedProxies:
    """Which peers may tell us the client address through ``X-Forwarded-For``.

    The rightmost hops were added by our own proxies; walking from the right, the first address
    that is not a trusted proxy is the client. A direct peer that is not trusted is the client,
    whatever the header says (django-auditlog's "first entry" rule lets any client spoof it).
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n)

    @classmethod
    def parse(cls, spec: str | None) -> TrustedProxies:
        try:
            return cls((spec or "").split(","))
        except ValueError as exc:
            raise AuditInputError(
                f"invalid trusted proxy list: {exc}",
                field="CARELOG_TRUSTED_PROXIES",
                hint="comma-separated addresses or CIDR networks, e.g. 10.0.0.0/8,127.0.0.1",
            ) from None

    def trusts(self, address: str | None) -> bool:
        ip = normalise_ip(address)
        if ip is None:
            return False
        parsed = ipaddress.ip_address(ip)
        return any(parsed in net for net in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        if not self.trusts(peer):
            return normalise_ip(peer)
        hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return normalise_ip(hop)
        return normalise_ip(hops[0]) if hops else normalise_ip(peer)


_FORWARDED_FOR = re.compile(r'(?i)(?:^|[;,\s])for=("?)\[?([^\]";,\s]+?)\]?(?::\d+)?\1(?=$|[;,\s])')


def forwarded_for(value: str) -> list[str]:
    """The ``for=`` addresses of an RFC 7239 ``Forwarded`` header, left to right (ports and
    IPv6 brackets removed; obfuscated names such as ``unknown`` are kept and fail later)."""
    return [m.group(2) for m in _FORWARDED_FOR.finditer(value)]


def request_id_for(asked: str | None) -> str:
    """The request id: always the server's own, so no client can make its request carry the
    id of another one; a well-formed client id follows it, for correlation across services."""
    own = uuid.uuid4().hex
    if asked and _CLIENT_REQUEST_ID.match(asked):
        return f"{own}-{asked}"
    return own


class AuditContextMiddleware:
    """Pure ASGI middleware: one fresh :class:`AuditContext` per HTTP request.

    It records address, user agent and request id (echoed as ``X-Request-ID``); the actor is
    bound later by authentication. The context is reset when the request ends.
    """

    def __init__(self, app: Any, trusted_proxies: TrustedProxies | None = None) -> None:
        self.app = app
        self.proxies = trusted_proxies or TrustedProxies()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        # X-Forwarded-For and RFC 7239 Forwarded mean the same thing; only trusted proxies'
        # word counts (the server runs with its own proxy-header handling off, see
        # carelog.cli.up_command), so neither lets a client choose its recorded address.
        forwarded = [v for k, v in headers if k == "x-forwarded-for"] or [
            ",".join(forwarded_for(v)) for k, v in headers if k == "forwarded"
        ]
        agent = next((v for k, v in headers if k == "user-agent"), None)
        asked = next((v for k, v in headers if k == "x-request-id"), None)
        peer = scope.get("client")[0] if scope.get("client") else None
        ctx = AuditContext(
            ip_address=self.proxies.client_address(peer, forwarded),
            user_agent=agent[:512] if agent else None,
            request_id=request_id_for(asked),
        )
        token = _current.set(ctx)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", ctx.request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
