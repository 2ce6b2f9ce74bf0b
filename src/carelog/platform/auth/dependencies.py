"""FastAPI dependencies: a verified identity and ONE unit of work per request.

Why the membership check lives inside the request's unit of work: the token says who the caller
claims to be and for which organization; ``user_org_memberships`` says whether that is still
true (a suspended member keeps a valid token until it expires). Checking it in the same
transaction as the request's work means there is no window between "checked" and "used", and
the same ``app.user_id``/``app.org_id`` that RLS enforces is the identity the code reasons about.

The unit is entered before the endpoint runs and left after it returns but before the response
is sent (``scope="function"``): it commits on a normal return, rolls back on any error, and a
failed commit is still reported to the client. Services never commit.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from carelog.audit.context import bind_actor
from carelog.db import unit as db_unit
from carelog.db.session import Scopes
from carelog.platform.auth import queries
from carelog.platform.auth.cookies import token_from_request
from carelog.platform.auth.tokens import (
    TokenClaims,
    TokenError,
    TokenVerifier,
)
from carelog.platform.errors import ApiError
from carelog.platform.services import services

ADMIN_ROLES = frozenset({"owner", "admin"})
# Used only to find which organization a WorkOS org id names: the membership policy keys on
# the user alone, so no organization context is needed (or granted) for that lookup.
_NO_ORG = uuid.UUID(int=0)


@dataclass(frozen=True)
class Identity:
    """A verified caller: the token's user, the organization, the role from the database."""

    user_id: str
    org_id: uuid.UUID
    role: str
    #: The admin acting as ``user_id`` (the token's ``act.sub``), and the session's id.
    impersonator: str | None = None
    session_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES


@dataclass(frozen=True)
class RequestUnit:
    """The request's transaction (RLS context set) and who it runs for."""

    session: db_unit.Unit
    identity: Identity
    scopes: Scopes
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def close_on_exit(self, close: Callable[[], Awaitable[None]]) -> None:
        """Run ``close`` before the unit commits or rolls back (a stream reading in it)."""
        self._closers.append(close)

    async def run_closers(self) -> None:
        for close in reversed(self._closers):
            await close()


def _unauthorized(message: str, hint: str | None = None) -> ApiError:
    return ApiError(message, status_code=401, code="UNAUTHENTICATED", hint=hint)


def _forbidden(message: str, hint: str | None = None) -> ApiError:
    return ApiError(message, status_code=403, code="FORBIDDEN", hint=hint)


def token_verifier(request: Request) -> TokenVerifier:
    """The runtime's verifier (built from settings, or the one a test gave the runtime)."""
    return services(request).token_verifier


#: Where a session cookie is accepted: the viewer's pages. The JSON API takes bearer tokens
#: only, so a same-site page cannot drive it with the browser's cookie (CSRF).
COOKIE_PATHS = ("/audit",)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def revoke_token(request: Request, token: str) -> None:
    """Sign-out: this token is refused from now on by this service, though it has not expired
    (kept until its expiry at most a day; one process's memory: see docs/security.md)."""
    if not token:
        return
    revoked: dict[str, float] = request.app.state.__dict__.setdefault("revoked_tokens", {})
    now = time.time()
    for key in [k for k, until in revoked.items() if until < now]:
        del revoked[key]
    revoked[_digest(token)] = now + 86_400


def _revoked(request: Request, token: str) -> bool:
    revoked: dict[str, float] = getattr(request.app.state, "revoked_tokens", {})
    return _digest(token) in revoked


async def verified_claims(request: Request) -> TokenClaims:
    """The claims of a valid token from the bearer header or (viewer pages only) the session
    cookie, else 401."""
    verifier = token_verifier(request)
    path = request.url.path
    cookies = request.cookies if path.startswith(COOKIE_PATHS) else {}
    token = token_from_request(
        request.headers.get("authorization"),
        cookies,
        getattr(verifier, "cookie_password", None),
    )
    if token is not None and _revoked(request, token):
        raise _unauthorized("this session was signed out", hint="sign in again")
    if token is None:
        raise _unauthorized(
            "authentication required",
            hint="send Authorization: Bearer <access token> (dev: `carelog dev token`)",
        )
    memo = services(request).token_memo
    claims = memo.claims(token)
    if claims is None:
        try:
            claims = await verifier.averify(token)
        except TokenError as exc:
            raise _unauthorized(exc.message, exc.hint) from None
        memo.remember(token, claims)
    request.state.claims = claims  # a later refusal is recorded in the org the token names
    return claims


async def _only_membership(scopes: Scopes, user_id: str) -> uuid.UUID:
    """A token naming no organization: the user's one active membership, else say how to pick."""
    async with scopes.org_scope(user_id, _NO_ORG) as session:
        # RLS shows only the user's own memberships and the organizations they are active in.
        rows = (await session.execute(queries.ACTIVE_MEMBERSHIPS, {"user_id": user_id})).all()
    if len(rows) == 1:
        return uuid.UUID(str(rows[0].id))
    if not rows:
        raise _forbidden("you are not an active member of any organization")
    choices = ", ".join(str(r.workos_org_id) for r in rows)
    raise ApiError(
        "choose an organization: the token names none and you belong to several",
        status_code=403,
        code="ORGANIZATION_REQUIRED",
        field="org_id",
        hint=f"sign in again with an organization selected (AuthKit: pass organization_id, "
        f"or refresh the session with organization_id=<org id>); yours: {choices}",
    )


async def _resolve_org(scopes: Scopes, claims: TokenClaims) -> uuid.UUID:
    """Our org UUID for the token's organization (a UUID already, or a WorkOS org id)."""
    if claims.org is None:
        return await _only_membership(scopes, claims.user_id)
    try:
        return uuid.UUID(claims.org)
    except ValueError:
        pass
    async with scopes.org_scope(claims.user_id, _NO_ORG) as session:
        # RLS shows only organizations the user is an active member of.
        found = await session.scalar(queries.ORG_BY_WORKOS_ID, {"workos_org_id": claims.org})
    if found is None:
        raise _forbidden("you are not a member of this organization")
    return uuid.UUID(str(found))


async def request_unit(
    request: Request, claims: Annotated[TokenClaims, Depends(verified_claims)]
) -> AsyncIterator[RequestUnit]:
    """Open the request's org-scoped unit, check the membership in it, bind the audit actor.

    The context and the membership come from one statement (``Scopes.member_scope``): one
    round trip to PostgreSQL before the endpoint's own work, not two. The unit ends before the
    response is sent (``Unit``), so a fail-closed read's audit event joins its transaction."""
    async with _unit(request, claims, commits_before_disclosure=True) as unit:
        yield unit


async def streaming_request_unit(
    request: Request, claims: Annotated[TokenClaims, Depends(verified_claims)]
) -> AsyncIterator[RequestUnit]:
    """:func:`request_unit` held open until the response has been sent: rows are disclosed
    before the commit, so read events go through the writer and are durable first."""
    async with _unit(request, claims, commits_before_disclosure=False) as unit:
        yield unit


@asynccontextmanager
async def _unit(
    request: Request, claims: TokenClaims, *, commits_before_disclosure: bool
) -> AsyncIterator[RequestUnit]:
    # A context manager, not a generator iterated with ``async for``: an error thrown into the
    # dependency at its ``yield`` must reach ``member_scope`` (roll back now, in this task).
    scopes = services(request).scopes
    org_id = await _resolve_org(scopes, claims)
    async with scopes.member_scope(
        claims.user_id, org_id, commits_before_disclosure=commits_before_disclosure
    ) as (session, membership):
        if membership is None:
            raise _forbidden("you are not a member of this organization")
        if membership.status != "active":
            raise _forbidden(
                f"your membership is {membership.status}",
                hint="ask an owner of the organization to reactivate it",
            )
        bind_actor(
            claims.user_id,
            org_id,
            impersonator=claims.impersonator,
            session_id=claims.session_id,
        )
        identity = Identity(
            claims.user_id, org_id, membership.role, claims.impersonator, claims.session_id
        )
        request.state.identity = identity
        unit = RequestUnit(session, identity, scopes)
        try:
            yield unit
        finally:
            await unit.run_closers()


Unit = Annotated[RequestUnit, Depends(request_unit, scope="function")]
#: The same unit held open until the response has been sent (streaming responses).
StreamingUnit = Annotated[RequestUnit, Depends(streaming_request_unit, scope="request")]


def ensure_admin(unit: RequestUnit) -> RequestUnit:
    if not unit.identity.is_admin:
        raise _forbidden(
            "only owners and admins of the organization may do this",
            hint=f"your role is {unit.identity.role}",
        )
    return unit


async def require_org_admin(unit: Unit) -> RequestUnit:
    """The request's unit, for owners and admins only (403 otherwise)."""
    return ensure_admin(unit)


AdminUnit = Annotated[RequestUnit, Depends(require_org_admin)]
