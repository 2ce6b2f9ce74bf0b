"""Which organization a Stripe object belongs to.

The system role sees one organization at a time (RLS), so the webhook cannot search every
tenant for a payment intent, and it should not be able to. Instead carelog's checkout puts
``org_id`` into the metadata of the Checkout Session and of its PaymentIntent
(``payment_intent_data.metadata``); Stripe copies the PaymentIntent's metadata onto the charges
it creates. The payload is trusted only after its signature has been verified. Disputes carry
no metadata, so for them (and any object without it) the PaymentIntent is fetched from the
Stripe API (``STRIPE_SECRET_KEY``); tests replace that lookup with a dependency override.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import stripe

log = logging.getLogger("carelog.payments")

#: PaymentIntent id -> its metadata (None when unknown to Stripe or not configured).
PaymentIntentLookup = Callable[[str], Awaitable[Mapping[str, Any] | None]]


async def stripe_api_lookup(payment_intent_id: str) -> Mapping[str, Any] | None:
    key = os.environ.get("STRIPE_SECRET_KEY")
    if not key:
        log.warning(
            "stripe payment intent lookup skipped: STRIPE_SECRET_KEY is not set",
            extra={"payment_intent": payment_intent_id},
        )
        return None
    intent = await asyncio.to_thread(stripe.PaymentIntent.retrieve, payment_intent_id, api_key=key)
    metadata = cast(Mapping[str, Any], intent.to_dict().get("metadata") or {})
    return dict(metadata)


def get_payment_intent_lookup() -> PaymentIntentLookup:
    """FastAPI dependency (overridable in tests)."""
    return stripe_api_lookup


def _parse(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def payment_intent_of(obj: Mapping[str, Any]) -> str | None:
    if obj.get("object") == "payment_intent":
        return str(obj["id"])
    pi = obj.get("payment_intent")
    return str(pi) if isinstance(pi, str) else None


def org_in_metadata(obj: Mapping[str, Any]) -> uuid.UUID | None:
    metadata = obj.get("metadata") or {}
    return _parse(metadata["org_id"]) if "org_id" in metadata else None


async def resolve_org(obj: Mapping[str, Any], lookup: PaymentIntentLookup) -> uuid.UUID | None:
    found = org_in_metadata(obj)
    if found is not None:
        return found
    pi = payment_intent_of(obj)
    if pi is None:
        return None
    metadata = await lookup(pi)
    return _parse(metadata["org_id"]) if metadata and "org_id" in metadata else None
