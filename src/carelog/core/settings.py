"""Configuration read from the environment, once, into an immutable value.

Secrets and locations come from environment variables only (twelve-factor), so the same build
runs on a laptop with the embedded PostgreSQL and in production against a managed server. Every
variable is listed in ``ENVIRONMENT_VARIABLES`` so the README's configuration table and the
validation here cannot drift apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from carelog.core.errors import ConfigurationError

ENVIRONMENT_VARIABLES: dict[str, tuple[str, str]] = {
    "CARELOG_DATABASE_URL": (
        "(unset: embedded PostgreSQL)",
        "Admin/owner connection used for migrations and role set-up. Unset: carelog starts an "
        "embedded PostgreSQL 16 in CARELOG_DATA_DIR.",
    ),
    "CARELOG_APP_DATABASE_URL": (
        "(derived)",
        "Runtime connection (the RLS-bound role that owns nothing). Default: the admin URL with "
        "the user replaced by <prefix>_app.",
    ),
    "CARELOG_SYSTEM_DATABASE_URL": (
        "(derived)",
        "Connection for webhooks and jobs (system actors, still org-scoped). Default: the admin "
        "URL with the user replaced by <prefix>_system.",
    ),
    "CARELOG_AUDIT_WRITER_DATABASE_URL": (
        "(derived)",
        "Connection of the audit group-commit writer (INSERT on audit_logs only). Default: the "
        "admin URL with the user replaced by <prefix>_audit_writer.",
    ),
    "CARELOG_DATA_DIR": (
        "$XDG_DATA_HOME/carelog or ~/.local/share/carelog",
        "Where the embedded PostgreSQL keeps its data between runs.",
    ),
    "CARELOG_DB_NAME": ("carelog", "Database created inside the embedded server."),
    "CARELOG_ROLE_PREFIX": (
        "carelog",
        "Prefix of the database roles carelog creates (<prefix>_owner, _app, _system, "
        "_audit_writer).",
    ),
    "CARELOG_ENV": ("development", "development or production (production refuses dev tokens)."),
    "CARELOG_HOST": ("127.0.0.1", "Address `carelog up` listens on."),
    "CARELOG_PORT": ("8000", "Port `carelog up` listens on."),
    "CARELOG_TRUSTED_PROXIES": (
        "(none)",
        "Comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For is believed.",
    ),
    "CARELOG_AUDIT_MASK_KEY": (
        "(development: generated in the data dir)",
        "32 random bytes, base64: key of the keyed hash that masks PHI/secret audit values.",
    ),
    "CARELOG_AUDIT_SPOOL_DIR": (
        "$CARELOG_DATA_DIR/audit-spool",
        "Where audit events are fsync'd while PostgreSQL is unreachable (replayed later).",
    ),
    "CARELOG_AUDIT_SIGNING_KEYS": (
        "(development: generated in the data dir)",
        "Ed25519 keys that sign audit checkpoints, kid:base64seed,...; the first signs, the "
        "rest are retired keys kept so old checkpoints still verify.",
    ),
    "CARELOG_AUDIT_SEAL_INTERVAL": (
        "5",
        "Seconds between sealing passes (new audit events -> Merkle leaves + signed checkpoint).",
    ),
    "CARELOG_AUDIT_STREAMS": (
        "(none)",
        "Comma-separated audit stream destinations: nats://host:port[?stream=&subject=] "
        "(JetStream) and https:// webhooks; `carelog audit stream run` delivers to them.",
    ),
    "CARELOG_AUDIT_STREAM_WEBHOOK_SECRET": (
        "(unset; required with a webhook)",
        "HMAC-SHA256 key of the X-Carelog-Signature header on audit stream webhooks.",
    ),
    "CARELOG_RECORD_KEYS": (
        "(development: generated in the data dir)",
        "Medical-record encryption keys, kid:base64key,...; the first is active.",
    ),
    "CARELOG_AUTH_MODE": (
        "dev (workos when CARELOG_ENV=production)",
        "How API access tokens are verified: dev (locally signed, refused in production) or "
        "workos (WorkOS AuthKit access tokens checked against the WorkOS JWKS).",
    ),
    "CARELOG_WORKOS_CLIENT_ID": (
        "(unset)",
        "WorkOS client id; required in workos mode (names the JWKS and the token issuer).",
    ),
    "CARELOG_WORKOS_ISSUER": (
        "<api base>, <api base>/user_management/<client id>",
        "Comma-separated accepted `iss` values of WorkOS access tokens (set it when using a "
        "custom auth domain).",
    ),
    "CARELOG_WORKOS_API_BASE": (
        "https://api.workos.com",
        "WorkOS API base URL; the default JWKS URL and issuers are derived from it.",
    ),
    "CARELOG_WORKOS_JWKS_URL": (
        "<api base>/sso/jwks/<client id>",
        "Where the WorkOS signing keys (JWKS) are fetched from.",
    ),
    "CARELOG_WORKOS_AUDIENCE": (
        "(unset: not checked)",
        "Comma-separated accepted `aud` values of WorkOS access tokens; when set, a token "
        "without one of them is refused.",
    ),
    "CARELOG_WORKOS_JWKS_TIMEOUT": (
        "3",
        "Seconds a JWKS fetch may take; requests keep being served with the cached keys.",
    ),
    "CARELOG_WORKOS_COOKIE_PASSWORD": (
        "(unset: AuthKit session cookies are not read)",
        "AuthKit's cookie password (the WORKOS_COOKIE_PASSWORD of the AuthKit app): unseals "
        "the `wos-session` cookie to read its access token.",
    ),
    "CARELOG_DATABASE_ALLOW_INSECURE_SOCKET": (
        "(unset)",
        "1: in production, accept database URLs without sslmode=require when they connect "
        "through a local Unix socket (host=/path). TCP connections always need TLS.",
    ),
    "CARELOG_DEV_TOKEN_KEY": (
        "(development: generated in the data dir)",
        "32 random bytes, base64: HS256 key of development tokens (`carelog dev token`).",
    ),
    "STRIPE_WEBHOOK_SECRET": (
        "(unset: the Stripe webhook answers 500)",
        "Signing secret (whsec_...) of the Stripe webhook endpoint; verifies every delivery.",
    ),
    "STRIPE_SECRET_KEY": (
        "(unset)",
        "Stripe API key (sk_...). The webhook never calls Stripe: it finds organizations from "
        "the payments carelog recorded.",
    ),
    "CARELOG_PRACTITIONER_AGREEMENT_VERSION": (
        "1.0",
        "Version of the practitioner agreement recorded when an expert first publishes.",
    ),
    "AUDITLOG_DATABASE_URL": (
        "(must be unset)",
        "Retired: audit logs live in the main database. carelog refuses to start while it is set.",
    ),
}

WORKOS_API = "https://api.workos.com"
_ROLE_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Roles:
    """The database roles; names are derived from one prefix so tests can isolate them."""

    owner: str
    app: str
    system: str
    writer: str

    @classmethod
    def from_prefix(cls, prefix: str) -> Roles:
        return cls(
            owner=f"{prefix}_owner",
            app=f"{prefix}_app",
            system=f"{prefix}_system",
            writer=f"{prefix}_audit_writer",
        )

    @property
    def runtime(self) -> tuple[str, str, str]:
        """The login roles the running service uses (none owns anything)."""
        return (self.app, self.system, self.writer)


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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkOSSettings:
        client = env.get("CARELOG_WORKOS_CLIENT_ID") or None
        base = (env.get("CARELOG_WORKOS_API_BASE") or WORKOS_API).rstrip("/")
        if not base.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ConfigurationError(
                f"invalid WorkOS API base {base!r}",
                field="CARELOG_WORKOS_API_BASE",
                hint="an https:// URL such as https://api.workos.com",
            )
        issuers = _csv(env.get("CARELOG_WORKOS_ISSUER"))
        if not issuers:
            issuers = (base, f"{base}/user_management/{client}") if client else (base,)
        timeout_text = env.get("CARELOG_WORKOS_JWKS_TIMEOUT", "3")
        try:
            timeout = float(timeout_text)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 30:
            raise ConfigurationError(
                f"invalid JWKS timeout {timeout_text!r}",
                field="CARELOG_WORKOS_JWKS_TIMEOUT",
                hint="seconds, more than 0 and at most 30",
            )
        password = env.get("CARELOG_WORKOS_COOKIE_PASSWORD") or None
        return cls(
            client_id=client,
            api_base=base,
            jwks_url=env.get("CARELOG_WORKOS_JWKS_URL")
            or (f"{base}/sso/jwks/{client}" if client else None),
            issuers=issuers,
            audience=_csv(env.get("CARELOG_WORKOS_AUDIENCE")),
            jwks_timeout=timeout,
            cookie_password=password,
        )


def _csv(text: str | None) -> tuple[str, ...]:
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


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    app_database_url: str | None
    system_database_url: str | None
    writer_database_url: str | None
    data_dir: Path
    db_name: str
    roles: Roles
    env: str
    host: str
    port: int
    workos: WorkOSSettings = field(default_factory=WorkOSSettings)

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        if env.get("AUDITLOG_DATABASE_URL"):
            raise ConfigurationError(
                "AUDITLOG_DATABASE_URL is set, but audit logs now live in the main database",
                hint="remove the variable; import old rows with `carelog legacy import-audit`",
            )
        prefix = env.get("CARELOG_ROLE_PREFIX", "carelog")
        if not _ROLE_PREFIX.match(prefix):
            raise ConfigurationError(
                f"invalid role prefix {prefix!r}",
                field="CARELOG_ROLE_PREFIX",
                hint="use lowercase letters, digits and underscores, starting with a letter",
            )
        db_name = env.get("CARELOG_DB_NAME", "carelog")
        if not _DB_NAME.match(db_name):
            raise ConfigurationError(
                f"invalid database name {db_name!r}",
                field="CARELOG_DB_NAME",
                hint="use letters, digits and underscores",
            )
        mode = env.get("CARELOG_ENV", "development")
        if mode not in ("development", "production", "test"):
            raise ConfigurationError(
                f"unknown environment {mode!r}",
                field="CARELOG_ENV",
                hint="use development, test or production",
            )
        port_text = env.get("CARELOG_PORT", "8000")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigurationError(
                f"invalid port {port_text!r}", field="CARELOG_PORT", hint="use 1-65535"
            )
        url = env.get("CARELOG_DATABASE_URL") or None
        if mode == "production" and url is None:
            raise ConfigurationError(
                "production needs CARELOG_DATABASE_URL; the embedded database is for development",
                field="CARELOG_DATABASE_URL",
            )
        if mode == "production":
            allow = env.get("CARELOG_DATABASE_ALLOW_INSECURE_SOCKET") == "1"
            for variable in (
                "CARELOG_DATABASE_URL",
                "CARELOG_APP_DATABASE_URL",
                "CARELOG_SYSTEM_DATABASE_URL",
                "CARELOG_AUDIT_WRITER_DATABASE_URL",
            ):
                if env.get(variable):
                    require_tls(env[variable], variable, allow_socket=allow)
        return cls(
            database_url=url,
            app_database_url=env.get("CARELOG_APP_DATABASE_URL") or None,
            system_database_url=env.get("CARELOG_SYSTEM_DATABASE_URL") or None,
            writer_database_url=env.get("CARELOG_AUDIT_WRITER_DATABASE_URL") or None,
            data_dir=Path(env["CARELOG_DATA_DIR"])
            if env.get("CARELOG_DATA_DIR")
            else _data_home(env),
            db_name=db_name,
            roles=Roles.from_prefix(prefix),
            env=mode,
            host=env.get("CARELOG_HOST", "127.0.0.1"),
            port=int(port_text),
            workos=WorkOSSettings.from_env(env),
        )


def _data_home(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "carelog"
