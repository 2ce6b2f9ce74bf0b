"""Stripe events as Stripe sends them: objects from Stripe's own OpenAPI fixtures, signed by the SDK.

``/work/shared``'s fixture file is copied into the repository (tests/fixtures) so the suite runs
anywhere; :func:`stripe_object` deep-copies one resource and applies the test's overrides, so
every field the test does not name keeps Stripe's real shape (``metadata: {}``, ``null``
payment intents on disputes, nested ``requirements`` on accounts...).
"""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

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
