"""Configuration: every environment variable carelog reads, read here once into one value.

Secrets and locations come from environment variables only (twelve-factor), so the same build
runs on a laptop with the embedded PostgreSQL and in production against a managed server. The
fields below are the whole list: ``pydantic-settings`` reads them, each field's description and
``doc_default`` generate the README's configuration table (``carelog docs config``), and a test
keeps the two equal. Nothing else in the package touches ``os.environ``.

A value that does not parse stops start-up with a :class:`ConfigurationError` naming the variable
and the fix. Rules that need more than one value or a file (production needs real keys, the key
formats themselves) are checked where the value is used, with the same kind of error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from carelog.core.config_values import (
    WORKOS_API,
    Roles,
    WorkOSSettings,
    csv_values,
    require_tls,
    setting,
)
from carelog.core.environment import EnvironmentSource, reading
from carelog.core.errors import ConfigurationError
from carelog.core.settings_integrations import IntegrationSettings

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "WORKOS_API",
    "Environment",
    "Roles",
    "Settings",
    "WorkOSSettings",
    "require_tls",
]

Environment = Literal["development", "test", "production"]

_ROLE_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


#: The numeric settings' bounds (inclusive) and what a bad value is called in the error.
_RANGES: dict[str, tuple[float, float, str]] = {
    "port": (1, 65535, "port"),
    "db_pool_size": (1, 200, "pool size"),
    "audit_seal_interval": (0.05, 86400, "sealing interval"),
}


class Settings(BaseSettings, IntegrationSettings):
    """The deployment's configuration (immutable; build it with :meth:`from_env`)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        case_sensitive=True,
        env_ignore_empty=True,
        populate_by_name=True,
    )

    database_url: str | None = setting(
        "CARELOG_DATABASE_URL",
        None,
        "(unset: embedded PostgreSQL)",
        "Admin/owner connection used for migrations and role set-up.",
    )
    app_database_url: str | None = setting(
        "CARELOG_APP_DATABASE_URL",
        None,
        "(derived)",
        "Runtime connection for people (RLS by membership); default: the admin URL with user "
        "`<prefix>_app`.",
    )
    system_database_url: str | None = setting(
        "CARELOG_SYSTEM_DATABASE_URL",
        None,
        "(derived)",
        "Runtime connection for webhooks and jobs (RLS by explicit org); default: user "
        "`<prefix>_system`.",
    )
    writer_database_url: str | None = setting(
        "CARELOG_AUDIT_WRITER_DATABASE_URL",
        None,
        "(derived)",
        "Connection of the audit group-commit writer (INSERT on `audit_logs` only); default: "
        "user `<prefix>_audit_writer`.",
    )
    maintenance_database_url: str | None = setting(
        "CARELOG_MAINTENANCE_DATABASE_URL",
        None,
        "(derived)",
        "Connection of maintenance jobs (retention purges, legacy imports), the only role that "
        "may run the purge functions; default: user `<prefix>_maintenance`.",
    )
    data_dir_override: Path | None = setting(
        "CARELOG_DATA_DIR",
        None,
        "`$XDG_DATA_HOME/carelog` or `~/.local/share/carelog`",
        "Where the embedded PostgreSQL keeps its data (and development keys live).",
    )
    xdg_data_home: Path | None = setting(
        "XDG_DATA_HOME",
        None,
        "`~/.local/share`",
        "The XDG base directory under which the default data directory `carelog` is made.",
    )
    db_name: str = setting(
        "CARELOG_DB_NAME",
        "carelog",
        "`carelog`",
        "Database created inside the embedded server.",
        hint="use letters, digits and underscores",
    )
    role_prefix: str = setting(
        "CARELOG_ROLE_PREFIX",
        "carelog",
        "`carelog`",
        "Prefix of the database roles (`<prefix>_owner`, `_app`, `_system`, `_audit_writer`, "
        "`_maintenance`).",
        hint="use lowercase letters, digits and underscores, starting with a letter",
    )
    env: Environment = setting(
        "CARELOG_ENV",
        "development",
        "`development`",
        "`development`, `test` or `production` (production requires a database URL and real keys).",
        hint="use development, test or production",
    )
    host: str = setting(
        "CARELOG_HOST", "127.0.0.1", "`127.0.0.1`", "Address `carelog up` listens on."
    )
    port: int = setting(
        "CARELOG_PORT", 8000, "`8000`", "Port `carelog up` listens on.", hint="use 1-65535"
    )
    db_pool_size: int = setting(
        "CARELOG_DB_POOL_SIZE",
        10,
        "`10`",
        "Connections each service process keeps open per runtime role; a request finding all "
        "in use waits for one (503 after 30 s) instead of opening a connection it would close "
        "again.",
        hint="use 1-200; keep processes x roles x size under the server's max_connections",
    )
    trusted_proxies: str = setting(
        "CARELOG_TRUSTED_PROXIES",
        "",
        "(none)",
        "Comma-separated addresses/CIDRs of reverse proxies whose `X-Forwarded-For` is believed.",
    )
    audit_mask_key: SecretStr | None = setting(
        "CARELOG_AUDIT_MASK_KEY",
        None,
        "(development: generated in the data dir)",
        "32 random bytes, base64: key of the keyed hash that masks PHI/secret values in audit "
        "changes.",
    )
    audit_spool_dir: Path | None = setting(
        "CARELOG_AUDIT_SPOOL_DIR",
        None,
        "`$CARELOG_DATA_DIR/audit-spool`",
        "Where audit events are fsync'd while PostgreSQL is unreachable (replayed in order later).",
    )
    audit_signing_keys: SecretStr | None = setting(
        "CARELOG_AUDIT_SIGNING_KEYS",
        None,
        "(development: generated in the data dir)",
        "Ed25519 checkpoint signing keys, `kid:base64seed,...`: the first signs, later ones are "
        "retired keys kept so old checkpoints verify (see docs/integrity.md).",
    )
    audit_seal_interval: float = setting(
        "CARELOG_AUDIT_SEAL_INTERVAL",
        5.0,
        "`5`",
        "Seconds between sealing passes (new audit events become Merkle leaves under a signed "
        "checkpoint).",
        hint="seconds between 0.05 and 86400",
    )
    audit_streams: str = setting(
        "CARELOG_AUDIT_STREAMS",
        "",
        "(none)",
        "Comma-separated audit stream destinations: `nats://host:port[?stream=NAME&subject="
        "PREFIX]` (NATS JetStream, one message per event on `<subject>.<org_id>`, `Nats-Msg-Id` "
        "= event id) and `https://` webhooks (signed JSON batches). `carelog audit stream run` "
        "delivers; `carelog audit stream status` shows lag and errors.",
    )
    audit_stream_webhook_secret: SecretStr | None = setting(
        "CARELOG_AUDIT_STREAM_WEBHOOK_SECRET",
        None,
        "(unset; required with a webhook)",
        "HMAC-SHA256 key of the `X-Carelog-Signature: t=<ts>,v1=<hex>` header (signed over "
        "`<ts>.<body>`) on audit stream webhooks.",
    )
    record_keys: SecretStr | None = setting(
        "CARELOG_RECORD_KEYS",
        None,
        "(development: generated in the data dir)",
        "Medical-record encryption keys, `kid:base64key,...`, first is active.",
    )
    audit_subject_keks: SecretStr | None = setting(
        "CARELOG_AUDIT_SUBJECT_KEKS",
        None,
        "(development: generated in the data dir)",
        "Key-encryption keys of the per-subject audit data keys, `kid:base64key,...`: the first "
        "wraps new keys, `carelog subject rewrap` moves the others onto it (docs/erasure.md).",
    )
    database_allow_insecure_socket: bool = setting(
        "CARELOG_DATABASE_ALLOW_INSECURE_SOCKET",
        False,
        "(unset)",
        "`1`: in production, accept database URLs without `sslmode=require` when they use a "
        "local Unix socket (`host=/path`). Production refuses every other URL without "
        "`sslmode=require`/`verify-ca`/`verify-full`.",
        hint="use 1 or 0",
    )
    practitioner_agreement_version: str = setting(
        "CARELOG_PRACTITIONER_AGREEMENT_VERSION",
        "1.0",
        "`1.0`",
        "Version of the practitioner agreement recorded when an expert first publishes their "
        "profile.",
    )
    debug: bool = setting(
        "CARELOG_DEBUG",
        False,
        "(unset)",
        "Set to 1 to let the CLI print the full traceback of an unexpected error.",
        hint="use 1 or 0",
    )
    retired_auditlog_database_url: str | None = setting(
        "AUDITLOG_DATABASE_URL",
        None,
        "must be unset",
        "Retired: audit logs live in the main database; carelog refuses to start while it is set.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment only: no .env file, no secrets directory (one place to look).
        return (init_settings, EnvironmentSource(settings_cls))

    # ------------------------------------------------------------------ validation

    @field_validator("role_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _ROLE_PREFIX.match(value):
            raise ValueError(f"invalid role prefix {value!r}")
        return value

    @field_validator("db_name")
    @classmethod
    def _check_db_name(cls, value: str) -> str:
        if not _DB_NAME.match(value):
            raise ValueError(f"invalid database name {value!r}")
        return value

    @field_validator("port", "db_pool_size", "audit_seal_interval")
    @classmethod
    def _check_range(cls, value: float, info: ValidationInfo) -> float:
        low, high, what = _RANGES[info.field_name or ""]
        if not low <= value <= high:
            raise ValueError(f"invalid {what} {value!r}")
        return value

    @field_validator("database_url", "workos_issuer", "workos_jwks_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_together(self) -> Settings:
        if self.retired_auditlog_database_url:
            raise ConfigurationError(
                "AUDITLOG_DATABASE_URL is set, but audit logs now live in the main database",
                hint="remove the variable; import old rows with `carelog legacy import-audit`",
            )
        if self.env == "production" and self.database_url is None:
            raise ConfigurationError(
                "production needs CARELOG_DATABASE_URL; the embedded database is for development",
                field="CARELOG_DATABASE_URL",
            )
        if self.env == "production":
            for name in (
                "database_url",
                "app_database_url",
                "system_database_url",
                "writer_database_url",
                "maintenance_database_url",
            ):
                url = getattr(self, name)
                if url:
                    require_tls(
                        url,
                        Settings.variable(name),
                        allow_socket=self.database_allow_insecure_socket,
                    )
        return self

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of this process (``os.environ``), or of ``environ`` when given.

        An explicit mapping is read *instead of* the process environment, so tests and child
        processes describe their whole configuration.
        """
        try:
            if environ is None:
                return cls()
            with reading(environ):
                return cls()
        except ValidationError as exc:
            raise _configuration_error(exc) from None

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (by field name), validated like the original."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update(changes)
        try:
            with reading({}):
                return type(self)(**values)
        except ValidationError as exc:
            raise _configuration_error(exc) from None

    # ------------------------------------------------------------------ derived values

    @property
    def data_dir(self) -> Path:
        if self.data_dir_override is not None:
            return self.data_dir_override
        base = self.xdg_data_home or Path.home() / ".local" / "share"
        return base / "carelog"

    @property
    def roles(self) -> Roles:
        return Roles.from_prefix(self.role_prefix)

    @property
    def spool_dir(self) -> Path:
        """Where the audit writer spools events while PostgreSQL is unreachable."""
        return self.audit_spool_dir or self.data_dir / "audit-spool"

    @property
    def workos(self) -> WorkOSSettings:
        """The WorkOS part, with the JWKS URL and issuers derived from the client id."""
        client = self.workos_client_id or None
        base = self.workos_api_base
        issuers = csv_values(self.workos_issuer)
        if not issuers:
            issuers = (base, f"{base}/user_management/{client}") if client else (base,)
        password = self.workos_cookie_password
        return WorkOSSettings(
            client_id=client,
            api_base=base,
            jwks_url=self.workos_jwks_url or (f"{base}/sso/jwks/{client}" if client else None),
            issuers=issuers,
            audience=csv_values(self.workos_audience),
            jwks_timeout=self.workos_jwks_timeout,
            cookie_password=password.get_secret_value() if password is not None else None,
            api_key=None if self.workos_api_key is None else self.workos_api_key.get_secret_value(),
        )

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable behind a field (for error messages)."""
        alias = cls.model_fields[field].validation_alias
        assert isinstance(alias, str)
        return alias


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    first = exc.errors()[0]
    variable = str(first["loc"][0]) if first["loc"] else None
    hint = None
    for name, info in Settings.model_fields.items():
        if info.validation_alias == variable or name == variable:
            variable = Settings.variable(name)
            extra = info.json_schema_extra
            hint = extra.get("hint") if isinstance(extra, dict) else None
    message = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    if isinstance(value, str) and "invalid" not in message and "SECRET" not in (variable or ""):
        message = f"{message} (got {value!r})"
    return ConfigurationError(message, field=variable, hint=str(hint) if hint else None)


def _documented() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for info in Settings.model_fields.values():
        extra = info.json_schema_extra
        assert isinstance(extra, dict)
        assert isinstance(info.validation_alias, str)
        if extra.get("documented"):
            table[info.validation_alias] = (str(extra["doc_default"]), info.description or "")
    return table


# Variable -> (default as documented, meaning): the README's configuration table, in order.
ENVIRONMENT_VARIABLES: dict[str, tuple[str, str]] = _documented()
