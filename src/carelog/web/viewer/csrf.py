"""CSRF tokens for the viewer's state-changing forms, and server-side sign-out.

``SameSite=Strict`` stops cross-*site* requests, not same-site ones (another app on a sibling
subdomain can still post a form to the viewer). Every viewer POST after sign-in therefore
carries a token the attacker cannot read: an HMAC of the session cookie under a key derived
from the deployment's audit mask key, so every worker accepts it (synchroniser token without
server state). The JSON API never accepts the cookie at all
(``carelog.platform.auth.dependencies.verified_claims``), so it needs none.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse

from fastapi import Request

from carelog.platform.auth.cookies import SESSION_COOKIE
from carelog.platform.errors import ApiError
from carelog.platform.services import services

CSRF_FIELD = "csrf_token"


def _key(request: Request) -> bytes:
    return services(request).csrf_key


def csrf_token(request: Request) -> str:
    """The token of this browser session (empty without a session)."""
    session = request.cookies.get(SESSION_COOKIE, "")
    if not session:
        return ""
    return hmac.new(_key(request), session.encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> None:
    """Refuse a viewer POST whose form does not carry this session's token."""
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    sent = (form.get(CSRF_FIELD) or [""])[0]
    expected = csrf_token(request)
    # Compared as bytes: compare_digest refuses non-ASCII str, and a hostile form may send any.
    given = sent.encode("utf-8", "surrogatepass")
    if not expected or not hmac.compare_digest(given, expected.encode()):
        raise ApiError(
            "this form is stale or was not sent from the audit viewer",
            status_code=403,
            code="CSRF_TOKEN_INVALID",
            hint="reload the page and submit the form again",
        )
