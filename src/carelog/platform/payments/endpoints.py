"""``POST /api/webhooks/stripe``: verify the signature, then handle the event exactly once;
``POST /api/checkout/sessions``: start the Stripe checkout of a paid booking.

The signature is checked with the official SDK (``stripe.Webhook.construct_event``: HMAC-SHA256
over ``<timestamp>.<raw body>``, constant-time compare, 5-minute tolerance against replays)
against ``STRIPE_WEBHOOK_SECRET``. A missing or bad signature is a 400 and a security event.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Literal

import stripe
from fastapi import APIRouter, Depends, Request

from carelog.db.session import Scopes
from carelog.platform.common import get_scopes
from carelog.platform.errors import ApiError
from carelog.platform.http import PUBLIC, PlatformRoute, described, error_responses
from carelog.platform.payments import service
from carelog.platform.payments.checkout import CheckoutIn, CheckoutOut, create_checkout
from carelog.platform.payments.schemas import WebhookAck
from carelog.platform.services import services

SECRET_VARIABLE = "STRIPE_WEBHOOK_SECRET"  # noqa: S105 - a variable name
router = APIRouter(tags=["payments"], route_class=PlatformRoute)
log = logging.getLogger("carelog.payments")


@router.post(
    "/api/webhooks/stripe",
    summary="Stripe webhook (signed by Stripe; no user authentication)",
    responses={
        **described(400, "Missing or invalid Stripe-Signature."),
        **described(500, "Not configured, or handling failed; Stripe retries."),
        **described(503, "The audit trail could not record the event; Stripe retries."),
    },
)
async def stripe_webhook(
    request: Request,
    scopes: Annotated[Scopes, Depends(get_scopes)],
) -> WebhookAck:
    configured = services(request).settings.stripe_webhook_secret
    secret = configured.get_secret_value() if configured is not None else None
    if not secret:
        log.error("stripe webhook called but %s is not set", SECRET_VARIABLE)
        raise ApiError(
            "the Stripe webhook is not configured",
            status_code=500,
            code="WEBHOOK_NOT_CONFIGURED",
            hint=f"set {SECRET_VARIABLE}",
        )
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    reason: Literal["missing", "invalid"] | None = None if signature else "missing"
    if signature:
        try:
            stripe.Webhook.construct_event(payload, signature, secret)
        except (ValueError, stripe.SignatureVerificationError):
            reason = "invalid"
    if reason is not None:
        await service.audit_invalid_signature(scopes, payload, reason)
        raise ApiError(
            f"{reason} Stripe signature",
            status_code=400,
            code="WEBHOOK_SIGNATURE_INVALID",
            field="Stripe-Signature",
        )
    status = await service.process(scopes, json.loads(payload))
    return WebhookAck(status=status)


@router.post(
    "/api/checkout/sessions",
    status_code=201,
    summary="Start the Stripe checkout of a paid event (public, no sign-in)",
    responses={
        **PUBLIC,
        **error_responses(404, 409),
        **described(502, "Stripe refused or did not answer; nothing was booked."),
    },
)
async def start_checkout(
    request: Request, body: CheckoutIn, scopes: Annotated[Scopes, Depends(get_scopes)]
) -> CheckoutOut:
    """Checks the slot, creates the Checkout Session and holds the slot until it expires.

    503 PAYMENTS_NOT_CONFIGURED without ``STRIPE_SECRET_KEY``."""
    return await create_checkout(scopes, services(request).settings, body)
