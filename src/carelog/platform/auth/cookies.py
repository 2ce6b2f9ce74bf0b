"""Where a request's access token comes from: the bearer header, AuthKit's cookie, or ours.

Two cookies, two owners. ``wos-session`` belongs to AuthKit: an app built on the WorkOS SDK
seals ``{access_token, refresh_token, user, impersonator?}`` into it with the cookie password
(``workos.session.seal_data``); carelog unseals it with the same password
(``CARELOG_WORKOS_COOKIE_PASSWORD``) through the SDK's own ``unseal_data`` and verifies the
access token inside like any other. carelog's audit viewer keeps the token a person pasted in
``carelog-session``, a name of its own, so the two never overwrite each other on a shared
domain. The sealed cookie is only a container: the token in it is verified in full.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger("carelog.auth")

#: carelog's own viewer session (a raw access token, HttpOnly, SameSite=Strict).
SESSION_COOKIE = "carelog-session"
#: AuthKit's sealed session.
AUTHKIT_COOKIE = "wos-session"


def unseal_authkit_session(sealed: str, cookie_password: str) -> str | None:
    """The access token inside an AuthKit session cookie, or None if it cannot be unsealed."""
    from workos.session import unseal_data

    try:
        data = unseal_data(sealed, cookie_password)
    except Exception:  # wrong password, tampered or not a sealed session at all
        log.info("an AuthKit session cookie could not be unsealed")
        return None
    token = data.get("access_token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def token_from_request(
    authorization: str | None,
    cookies: Mapping[str, str],
    cookie_password: str | None = None,
) -> str | None:
    """``Authorization: Bearer <token>`` first, then carelog's cookie, then AuthKit's."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    own = (cookies.get(SESSION_COOKIE) or "").strip()
    if own:
        return own
    sealed = (cookies.get(AUTHKIT_COOKIE) or "").strip()
    if sealed and cookie_password:
        return unseal_authkit_session(sealed, cookie_password)
    return None
