"""Small typed values derived from settings: the database roles, the WorkOS part, TLS rules.

They live apart from :mod:`carelog.core.settings` (which re-exports them) so the settings
module stays the list of variables; nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import Field

from carelog.core.errors import ConfigurationError

WORKOS_API = "https://api.workos.com"


@dataclass(frozen=True)
class Roles:
    """The database roles; names are derived from one prefix so tests can isolate them."""

    owner: str
    app: str
    system: str
    writer: str
    maintenance: str

    @classmethod
    def from_prefix(cls, prefix: str) -> Roles:
        return cls(
            owner=f"{prefix}_owner",
            app=f"{prefix}_app",
            system=f"{prefix}_system",
            writer=f"{prefix}_audit_writer",
            maintenance=f"{prefix}_maintenance",
        )

    @property
    def runtime(self) -> tuple[str, str, str, str]:
        """The login roles the running service and its jobs use (none owns anything)."""
        return (self.app, self.system, self.writer, self.maintenance)


@dataclass(frozen=True)
class WorkOSSettings:
    """Where WorkOS keys come from and which tokens it issues for this client."""

    client_id: str | None = None
    api_base: str = WORKOS_API
    jwks_url: str | None = None
    issuers: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    jwks_timeout: float = 3.0
    cookie_password: str | None = field(default=None, repr=False)
    #: Management API key: in workos mode, each booking's guest becomes a WorkOS user.
    api_key: str | None = field(default=None, repr=False)


def csv_values(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


_TLS_MODES = frozenset({"require", "verify-ca", "verify-full"})


def require_tls(url: str, variable: str, *, allow_socket: bool) -> None:
    """Production talks to PostgreSQL over TLS only (``sslmode=require`` or stricter).

    A Unix socket (``host=/run/postgresql``) never leaves the machine, so it may go without
    TLS, but only when ``CARELOG_DATABASE_ALLOW_INSECURE_SOCKET=1`` says so explicitly.
    """
    parts = urlsplit(url)
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    if query.get("sslmode", "").lower() in _TLS_MODES:
        return
    host = query.get("host") or parts.hostname or ""
    if allow_socket and (host.startswith("/") or host == ""):
        return
    raise ConfigurationError(
        "production refuses a database connection without TLS",
        field=variable,
        hint="add ?sslmode=require (or verify-full); a local Unix socket may go without TLS "
        "with CARELOG_DATABASE_ALLOW_INSECURE_SOCKET=1",
    )


# The variables being read: the process environment, or the mapping given to ``from_env``.


def setting(
    variable: str,
    default: Any,
    doc_default: str,
    description: str,
    *,
    hint: str | None = None,
    documented: bool = True,
) -> Any:
    """One environment variable: its name, default, README text and the fix for a bad value."""
    return Field(
        default,
        validation_alias=variable,
        description=description,
        json_schema_extra={"doc_default": doc_default, "hint": hint, "documented": documented},
    )
