"""Authentication: verified tokens (WorkOS or development) and the per-request unit of work."""

from carelog.platform.auth.dependencies import (
    AdminUnit,
    CurrentIdentity,
    Identity,
    RequestUnit,
    StreamingUnit,
    Unit,
    current_identity,
    db_unit,
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
    "CurrentIdentity",
    "DevTokenSigner",
    "Identity",
    "RequestUnit",
    "StreamingUnit",
    "TokenClaims",
    "TokenError",
    "TokenVerifier",
    "Unit",
    "WorkOSTokenVerifier",
    "current_identity",
    "db_unit",
    "dev_signer",
    "ensure_admin",
    "request_unit",
    "require_org_admin",
    "verifier_from_settings",
]
