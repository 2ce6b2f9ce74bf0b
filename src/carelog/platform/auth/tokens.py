"""Access tokens: WorkOS AuthKit in production, a locally signed token everywhere else.

Why two verifiers and not one with a switch inside: the production verifier must not even be
able to accept a development token. WorkOS tokens are RS256 and verified only with keys from
the WorkOS JWKS; development tokens are HS256 with a local key, have their own issuer, and the
development verifier refuses to exist when ``CARELOG_ENV=production``. Both produce the same
claims (user id, organization, role); which organizations a user really belongs to is then
decided by ``user_org_memberships`` (see ``dependencies.py``), never by the token alone.

WorkOS issues AuthKit access tokens under ``https://api.workos.com`` and under the per-client
user-management issuer ``https://api.workos.com/user_management/<client id>``: both are accepted
(``CARELOG_WORKOS_ISSUER`` replaces the list), and ``aud`` is checked when
``CARELOG_WORKOS_AUDIENCE`` is set. A token may name no organization (a user who signed in
without choosing one) and may carry ``act`` (an admin impersonating the user): both are passed
on, and decided by ``dependencies.py``.

Tests point :class:`WorkOSTokenVerifier` at a loopback JWKS server (or hand it any
``PyJWKClient``).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import jwt

from carelog.core.errors import CarelogError, ConfigurationError
from carelog.core.secrets import load_secret
from carelog.core.settings import Settings, WorkOSSettings
from carelog.platform.auth.jwks import JwksCache, JwksUnavailableError

AuthMode = Literal["dev", "workos"]
MODE_VARIABLE = "CARELOG_AUTH_MODE"
CLIENT_ID_VARIABLE = "CARELOG_WORKOS_CLIENT_ID"
DEV_KEY_VARIABLE = "CARELOG_DEV_TOKEN_KEY"
DEV_KEY_FILE = "dev-token-key"
DEV_ISSUER = "carelog-dev"
DEV_AUDIENCE = "carelog"
WORKOS_API = "https://api.workos.com"
DEV_ROLES: tuple[str, ...] = ("owner", "admin", "member")
MAX_DEV_TTL = 7 * 24 * 3600
LEEWAY_SECONDS = 30  # clock skew between WorkOS (or the CLI) and us
_REQUIRED = ("exp", "iat", "sub")


class TokenError(CarelogError):
    """A token that proves nothing; the message is safe to show (never the token itself)."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token asserts. ``org`` is our org UUID or a WorkOS org id (``org_…``)."""

    user_id: str
    org: str | None
    role: str | None
    expires_at: datetime
    session_id: str | None = None
    #: ``act.sub``: who is really acting when an admin impersonates ``user_id``.
    impersonator: str | None = None


class TokenVerifier(Protocol):
    mode: AuthMode

    def verify(self, token: str) -> TokenClaims: ...

    async def averify(self, token: str) -> TokenClaims: ...


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _claims(payload: Mapping[str, Any]) -> TokenClaims:
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub.strip() or sub.startswith("system:"):
        raise TokenError("the token names no user", field="sub")
    org = payload.get("org_id")
    if org is not None and _text(org) is None:
        raise TokenError(
            "the token's organization is malformed",
            field="org_id",
            hint="sign in to an organization (WorkOS: switch to an organization first)",
        )
    act = payload.get("act")
    impersonator = None
    if act is not None:
        impersonator = _text(act.get("sub")) if isinstance(act, Mapping) else None
        if impersonator is None:
            raise TokenError("the token's act claim names no actor", field="act")
    return TokenClaims(
        user_id=sub,
        org=_text(org),
        role=_text(payload.get("role")),
        expires_at=datetime.fromtimestamp(int(payload["exp"]), tz=UTC),
        session_id=_text(payload.get("sid")),
        impersonator=impersonator,
    )


def _decode_error(exc: jwt.PyJWTError) -> TokenError:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return TokenError("the token has expired", hint="sign in again or issue a new token")
    if isinstance(exc, jwt.InvalidIssuerError | jwt.InvalidAudienceError):
        return TokenError("the token was issued for another service")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return TokenError(f"the token lacks the {exc.claim!r} claim")
    if isinstance(exc, jwt.InvalidSignatureError):
        return TokenError("the token signature is invalid")
    return TokenError("the token is malformed or not signed by a trusted key")


class TokenMemo:
    """Tokens this process verified lately, by digest: their claims again without the decode.

    Every request verified its bearer token again (PyJWT's decode, signature and claim
    checks: about 4% of an audited read's CPU), though a client sends the same token for its
    whole session. An entry lives until the token expires or for ``ttl`` seconds, whichever
    comes first, so a key withdrawn from the WorkOS JWKS stops being honoured within ``ttl``;
    only tokens that verified are kept, under their SHA-256 (a token differing in one byte is
    another key), sign-outs are checked before the memo is, and entries are bounded (the
    oldest goes first)."""

    def __init__(
        self, ttl: float = 60.0, size: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._entries: dict[bytes, tuple[TokenClaims, float]] = {}

    def claims(self, token: str) -> TokenClaims | None:
        key = hashlib.sha256(token.encode()).digest()
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._entries[key]
            return None
        return entry[0]

    def remember(self, token: str, claims: TokenClaims) -> None:
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # insertion order: the oldest
        until = min(claims.expires_at.timestamp(), self._clock() + self._ttl)
        self._entries[hashlib.sha256(token.encode()).digest()] = (claims, until)


# --------------------------------------------------------------------------- development


class DevTokenSigner:
    """HS256 tokens for development and tests, with the claims WorkOS puts in its tokens."""

    mode: AuthMode = "dev"

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ConfigurationError("the development token key must be 32 bytes or more")
        self._key = key

    def issue(
        self,
        user_id: str,
        org_id: uuid.UUID | str,
        *,
        role: str = "member",
        ttl: int = 3600,
        now: float | None = None,
        act: str | None = None,
    ) -> str:
        """``act``: an admin acting as ``user_id`` (AuthKit's impersonation claim)."""
        if role not in DEV_ROLES:
            raise CarelogError(f"unknown role {role!r}", field="role", hint="owner|admin|member")
        if not 1 <= ttl <= MAX_DEV_TTL:
            raise CarelogError(f"ttl {ttl} is out of range", field="ttl", hint=f"1..{MAX_DEV_TTL}")
        issued = int(time.time() if now is None else now)
        payload = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": user_id,
            "org_id": str(org_id),
            "role": role,
            "sid": f"dev_{uuid.uuid4().hex}",
            "iat": issued,
            "exp": issued + ttl,
        }
        if act is not None:
            payload["act"] = {"sub": act}
        return jwt.encode(payload, self._key, algorithm="HS256")

    def verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=DEV_ISSUER,
                audience=DEV_AUDIENCE,
                leeway=LEEWAY_SECONDS,
                options={"require": [*_REQUIRED, "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise _decode_error(exc) from None
        return _claims(payload)

    async def averify(self, token: str) -> TokenClaims:
        return self.verify(token)  # a local HMAC: nothing to wait for


# --------------------------------------------------------------------------- WorkOS


def workos_jwks_url(client_id: str) -> str:
    """The JWKS URL as the official SDK builds it (no network: it only formats the URL)."""
    try:
        from workos import WorkOSClient

        client = WorkOSClient(client_id=client_id)
        return str(client.user_management.get_jwks_url(client_id))
    except Exception:  # an SDK without the helper: the documented URL shape
        return f"{WORKOS_API}/sso/jwks/{client_id}"


class WorkOSTokenVerifier:
    """RS256 AuthKit access tokens, keys from the WorkOS JWKS (cached, refreshed off the loop)."""

    mode: AuthMode = "workos"

    def __init__(
        self,
        client_id: str,
        *,
        jwks_client: jwt.PyJWKClient | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: Sequence[str] = (),
        jwks_url: str | None = None,
        jwks_timeout: float = 3.0,
        jwks_lifespan: float = 3600.0,
        cookie_password: str | None = None,
    ) -> None:
        if not client_id:
            raise ConfigurationError(
                "workos mode needs a WorkOS client id", field=CLIENT_ID_VARIABLE
            )
        self.client_id = client_id
        if issuer is None:
            issuer = (WORKOS_API, f"{WORKOS_API}/user_management/{client_id}")
        self.issuers = [issuer] if isinstance(issuer, str) else list(issuer)
        self.audience = list(audience)
        #: Unseals AuthKit's ``wos-session`` cookie (see ``cookies.py``); None: not read.
        self.cookie_password = cookie_password
        client = jwks_client or jwt.PyJWKClient(
            jwks_url or workos_jwks_url(client_id), cache_keys=False, timeout=jwks_timeout
        )
        self.jwks = JwksCache(client, timeout=jwks_timeout, lifespan=jwks_lifespan)

    @classmethod
    def from_settings(cls, workos: WorkOSSettings) -> WorkOSTokenVerifier:
        return cls(
            workos.client_id or "",
            issuer=workos.issuers or None,
            audience=workos.audience,
            jwks_url=workos.jwks_url,
            jwks_timeout=workos.jwks_timeout,
            cookie_password=workos.cookie_password,
        )

    @staticmethod
    def _kid(token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _decode_error(exc) from None
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("the token is not signed by a WorkOS key")
        return kid

    def _decode(self, token: str, key: jwt.PyJWK) -> TokenClaims:
        required = [*_REQUIRED, "iss"] + (["aud"] if self.audience else [])
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuers,
                audience=self.audience or None,
                leeway=LEEWAY_SECONDS,
                options={"require": required, "verify_aud": bool(self.audience)},
            )
        except jwt.PyJWTError as exc:
            raise _decode_error(exc) from None
        return _claims(payload)

    async def averify(self, token: str) -> TokenClaims:
        """Verify without blocking the event loop (see ``jwks.py``)."""
        kid = self._kid(token)
        try:
            key = await self.jwks.key(kid)
        except JwksUnavailableError:
            raise TokenError("the token is not signed by a WorkOS key") from None
        return self._decode(token, key)

    def verify(self, token: str) -> TokenClaims:
        """Blocking variant for the CLI and scripts (never called on the event loop)."""
        kid = self._kid(token)
        try:
            key = self.jwks.key_sync(kid)
        except JwksUnavailableError:
            raise TokenError("the token is not signed by a WorkOS key") from None
        return self._decode(token, key)


# --------------------------------------------------------------------------- configuration


def auth_mode(settings: Settings) -> AuthMode:
    mode = settings.auth_mode or ("workos" if settings.production else "dev")
    if mode == "dev" and settings.production:
        raise ConfigurationError(
            "development tokens are refused in production",
            field=MODE_VARIABLE,
            hint="use CARELOG_AUTH_MODE=workos with CARELOG_WORKOS_CLIENT_ID",
        )
    return "dev" if mode == "dev" else "workos"


def dev_signer(settings: Settings) -> DevTokenSigner:
    """The development signer; refused in production whatever the mode variable says."""
    if settings.production:
        raise ConfigurationError(
            "development tokens are refused in production", field="CARELOG_ENV"
        )
    return DevTokenSigner(load_secret(settings, "dev_token_key", DEV_KEY_FILE))


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    if auth_mode(settings) == "dev":
        return dev_signer(settings)
    return WorkOSTokenVerifier.from_settings(settings.workos)
