"""The settings of the services carelog talks to: WorkOS, development tokens, Stripe.

A mixin of :class:`carelog.core.settings.Settings` (the one settings object), kept in its own
module so each module stays short; the fields are read from the environment like every other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, SecretStr, field_validator

from carelog.core.config_values import WORKOS_API, setting


class IntegrationSettings(BaseModel):
    """WorkOS AuthKit, development tokens and Stripe (see the README's configuration table)."""

    auth_mode: Literal["dev", "workos"] | None = setting(
        "CARELOG_AUTH_MODE",
        None,
        "`dev` (`workos` when `CARELOG_ENV=production`)",
        "How API tokens are verified: `dev` (locally signed by `carelog dev token`; refused in "
        "production) or `workos` (WorkOS AuthKit access tokens against the WorkOS JWKS).",
        hint="dev|workos",
    )
    workos_client_id: str = setting(
        "CARELOG_WORKOS_CLIENT_ID",
        "",
        "(unset)",
        "WorkOS client id; required in `workos` mode (names the JWKS URL and the token issuer).",
    )
    workos_issuer: str | None = setting(
        "CARELOG_WORKOS_ISSUER",
        None,
        "`<api base>`, `<api base>/user_management/<client id>`",
        "Comma-separated accepted `iss` values of WorkOS access tokens (WorkOS uses both "
        "defaults).",
    )
    workos_api_base: str = setting(
        "CARELOG_WORKOS_API_BASE",
        WORKOS_API,
        "`https://api.workos.com`",
        "WorkOS API base URL; the default JWKS URL and issuers derive from it (a custom auth "
        "domain).",
        hint="an https:// URL such as https://api.workos.com",
    )
    workos_jwks_url: str | None = setting(
        "CARELOG_WORKOS_JWKS_URL",
        None,
        "`<api base>/sso/jwks/<client id>`",
        "Where WorkOS's signing keys are fetched from (off the event loop; cached keys keep "
        "serving while a refresh runs).",
    )
    workos_audience: str = setting(
        "CARELOG_WORKOS_AUDIENCE",
        "",
        "(unset: not checked)",
        "Comma-separated accepted `aud` values; when set, tokens without one of them are refused.",
    )
    workos_jwks_timeout: float = setting(
        "CARELOG_WORKOS_JWKS_TIMEOUT",
        3.0,
        "`3`",
        "Seconds a JWKS fetch may take before a token with an unknown key is refused.",
        hint="seconds, more than 0 and at most 30",
    )
    workos_cookie_password: SecretStr | None = setting(
        "CARELOG_WORKOS_COOKIE_PASSWORD",
        None,
        "(unset: AuthKit cookies not read)",
        "AuthKit's cookie password (`WORKOS_COOKIE_PASSWORD` of the AuthKit app): unseals the "
        "`wos-session` cookie (workos SDK `unseal_data`) to verify the access token inside.",
    )
    workos_api_key: SecretStr | None = setting(
        "CARELOG_WORKOS_API_KEY",
        None,
        "(unset)",
        "WorkOS API key (`sk_…`); in `workos` mode each booking's guest becomes (or is found as) "
        "a WorkOS user through the SDK, and that user is the booking's data subject.",
    )
    dev_token_key: SecretStr | None = setting(
        "CARELOG_DEV_TOKEN_KEY",
        None,
        "(development: generated in the data dir)",
        "32 random bytes, base64: HS256 key of development tokens.",
    )
    stripe_webhook_secret: SecretStr | None = setting(
        "STRIPE_WEBHOOK_SECRET",
        None,
        "(unset: the webhook answers 500)",
        "Signing secret (`whsec_…`) of the Stripe webhook endpoint; every delivery's signature "
        "is verified with it.",
    )
    stripe_secret_key: SecretStr | None = setting(
        "STRIPE_SECRET_KEY",
        None,
        "(unset)",
        "Stripe API key (`sk_…`). The webhook never calls Stripe: disputes and refunds "
        "(`metadata: {}`) are placed through the charge and payment intent carelog recorded at "
        "payment time (`payment_refs`).",
    )
    stripe_api_base: str = setting(
        "STRIPE_API_BASE",
        "https://api.stripe.com",
        "`https://api.stripe.com`",
        "Stripe API base URL the checkout endpoint's SDK talks to (a proxy, or `stripe-mock` "
        "in tests).",
    )

    @field_validator("workos_api_base")
    @classmethod
    def _check_api_base(cls, value: str) -> str:
        base = value.rstrip("/")
        if not base.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError(f"invalid WorkOS API base {base!r}")
        return base

    @field_validator("workos_jwks_timeout")
    @classmethod
    def _check_jwks_timeout(cls, value: float) -> float:
        if not 0 < value <= 30:
            raise ValueError(f"invalid JWKS timeout {value!r}")
        return value
