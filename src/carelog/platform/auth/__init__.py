"""Authentication: verified tokens (WorkOS or development) and the per-request unit of work."""

from carelog.platform.auth.dependencies import (
    AdminUnit,
    Identity,
    RequestUnit,
    StreamingUnit,
    Unit,
    ensure_admin,
    request_unit,
    require_org_admin,
)
from carelog.platform.auth.tokens import (
    DevTokenSigner,
    TokenClaims,
    TokenError,
    TokenVerifier,
    WorkOSTokenVerifier,
    dev_signer,
    verifier_from_settings,
)

__all__ = [
    "AdminUnit",
    "DevTokenSigner",
    "Identity",
    "RequestUnit",
    "StreamingUnit",
    "TokenClaims",
    "TokenError",
    "TokenVerifier",
    "Unit",
    "WorkOSTokenVerifier",
    "dev_signer",
    "ensure_admin",
    "request_unit",
    "require_org_admin",
    "verifier_from_settings",
]
