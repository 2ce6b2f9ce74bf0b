"""A loopback WorkOS: a JWKS endpoint over real HTTP and AuthKit-shaped access tokens.

The server speaks the JWKS wire format (``GET /sso/jwks/<client id>`` -> ``{"keys": [...]}``)
and can be made slow, to prove that a slow WorkOS never stalls the event loop. Tokens carry the
claim set AuthKit issues: ``iss, sub, sid, org_id, role, permissions, exp, iat, jti`` and, when
an admin impersonates the user, ``act: {sub}``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "client_01JAUTHKITTEST"
API = "https://api.workos.com"
USER_MANAGEMENT_ISSUER = f"{API}/user_management/{CLIENT_ID}"


@dataclass
class LoopbackWorkOS:
    key: rsa.RSAPrivateKey
    kid: str
    url: str = ""
    delay: float = 0.0
    requests: int = 0
    served: list[float] = field(default_factory=list)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/sso/jwks/{CLIENT_ID}"

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, sub: str, *, kid: str | None = None, **claims: Any) -> str:
        """An AuthKit access token; ``org_id=None`` leaves the claim out."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": USER_MANAGEMENT_ISSUER,
            "sub": sub,
            "sid": f"session_{uuid.uuid4().hex[:26].upper()}",
            "org_id": "org_a",
            "role": "member",
            "permissions": ["records:read"],
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@contextmanager
def loopback_workos() -> Iterator[LoopbackWorkOS]:
    state = LoopbackWorkOS(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), "sso_oidc_key_pair_01"
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if state.delay:
                time.sleep(state.delay)
            if self.path != f"/sso/jwks/{CLIENT_ID}":
                self.send_error(404)
                return
            body = json.dumps(state.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            state.served.append(time.monotonic())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
