"""A loopback stand-in for the WorkOS user-management API, speaking its wire format.

Only the two calls carelog makes: ``GET /user_management/users?email=`` (a list page) and
``POST /user_management/users`` (a user object). Requests must carry the API key as a bearer
token, as the real API requires; every request is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "sk_test_standin"


@dataclass
class WorkOSStandIn:
    url: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def _user(n: int, email: str, first: str | None, last: str | None) -> dict[str, Any]:
    return {
        "object": "user",
        "id": f"user_01STANDIN{n:06d}",
        "email": email,
        "first_name": first,
        "last_name": last,
        "email_verified": False,
        "profile_picture_url": None,
        "external_id": None,
        "last_sign_in_at": None,
        "metadata": {},
        "created_at": "2026-12-02T10:00:00.000Z",
        "updated_at": "2026-12-02T10:00:00.000Z",
    }


@contextmanager
def workos_standin() -> Iterator[WorkOSStandIn]:
    state = WorkOSStandIn(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self._reply(401, {"message": "Unauthorized", "code": "unauthorized"})
                return False
            return True

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.requests.append(("GET", url.path, query))
            if not self._authorised():
                return
            if url.path != "/user_management/users":
                self._reply(404, {"message": "Not Found"})
                return
            found = [u for u in state.users.values() if u["email"] == query.get("email")]
            meta = {"before": None, "after": None}
            self._reply(200, {"object": "list", "data": found, "list_metadata": meta})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(("POST", self.path, body))
            if not self._authorised():
                return
            if self.path != "/user_management/users":
                self._reply(404, {"message": "Not Found"})
                return
            email = str(body["email"]).strip().lower()
            if email in state.users:
                self._reply(422, {"code": "email_not_available", "message": "taken"})
                return
            user = _user(len(state.users) + 1, email, body.get("first_name"), body.get("last_name"))
            state.users[email] = user
            self._reply(201, user)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
