"""Stripe events as Stripe sends them: objects from Stripe's own OpenAPI fixtures, signed by the SDK.

``/work/shared``'s fixture file is copied into the repository (tests/fixtures) so the suite runs
anywhere; :func:`stripe_object` deep-copies one resource and applies the test's overrides, so
every field the test does not name keeps Stripe's real shape (``metadata: {}``, ``null``
payment intents on disputes, nested ``requirements`` on accounts...).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import stripe
from api_harness import Api

SECRET = "whsec_test_" + "r" * 24
FIXTURES = Path(__file__).parents[1] / "fixtures" / "stripe-openapi-fixtures3.json"


@cache
def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


def stripe_object(kind: str, **overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = copy.deepcopy(_resources()[kind])
    obj.update(overrides)
    return obj


def stripe_event(kind: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An ``event`` fixture around ``obj`` (fresh id, the given type)."""
    return stripe_object(
        "event", id=f"evt_{uuid.uuid4().hex[:24]}", type=kind, data={"object": obj}, **extra
    )


async def deliver_signed(api: Api, evt: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    payload = json.dumps(evt)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    return await api.client.post(
        "/api/webhooks/stripe",
        content=payload.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )


# --------------------------------------------------------------------------- loopback Stripe API


def _unflatten(form: dict[str, list[str]]) -> dict[str, Any]:
    """Stripe's form encoding (``metadata[org_id]=…``, ``line_items[0][quantity]=1``) as JSON."""
    out: dict[str, Any] = {}
    for key, values in form.items():
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = values[-1]
    return out


@dataclass
class LoopbackStripe:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: bool = False


@contextmanager
def loopback_stripe() -> Iterator[LoopbackStripe]:
    """``POST /v1/checkout/sessions`` as Stripe answers it (the fixture's session shape)."""
    state = LoopbackStripe()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            params = _unflatten(form)
            state.requests.append(
                {"path": self.path, "auth": self.headers.get("Authorization"), "params": params}
            )
            if self.path != "/v1/checkout/sessions" or state.fail:
                status, body = (
                    400,
                    {"error": {"type": "invalid_request_error", "message": "refused by test"}},
                )
            else:
                sid = f"cs_test_{uuid.uuid4().hex}"
                session = stripe_object(
                    "checkout.session",
                    id=sid,
                    url=f"https://checkout.stripe.com/c/pay/{sid}",
                    status="open",
                    payment_status="unpaid",
                    payment_intent=None,
                    mode=params["mode"],
                    customer_email=params.get("customer_email"),
                    success_url=params["success_url"],
                    cancel_url=params["cancel_url"],
                    expires_at=int(params["expires_at"]),
                    metadata=params.get("metadata", {}),
                    amount_total=int(params["line_items"]["0"]["price_data"]["unit_amount"]),
                    currency=params["line_items"]["0"]["price_data"]["currency"],
                )
                state.sessions[sid] = session
                status, body = 200, session
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
            self.end_headers()
            self.wfile.write(data)

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
