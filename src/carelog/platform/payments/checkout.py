"""Starting a paid booking: a Stripe Checkout Session carrying what the webhook needs.

Booking a paid event answers 409 PAYMENT_REQUIRED "start a Stripe checkout"; this is that
start. The slot gets the same checks as a free booking, then the session is created with the
official SDK (``STRIPE_SECRET_KEY``, ``STRIPE_API_BASE``) outside any database transaction (no
lock is held while Stripe answers), and finally the slot is held for the session's lifetime
and the session id is routed to the organization (``payment_refs``), in one transaction with
the PAYMENT_INITIATED audit row.

The metadata is the contract with ``handlers.py``: ``org_id``, ``event_id``, ``expert_id``,
``start_time``, ``timezone``, ``guest_name`` and ``platform_fee`` on the session, and ``org_id``,
``event_id``, ``expert_id``, ``platform_fee`` (and the expert's Connect account when known) on
its PaymentIntent, which Stripe copies onto the charges. Guest notes are not accepted here:
clinical notes do not go to a payment processor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from typing import Any, cast

import stripe
from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from carelog.audit import log_audit_event
from carelog.core.settings import Settings
from carelog.db.session import Scopes
from carelog.platform.common import system_audit
from carelog.platform.errors import ApiError, conflict, not_found
from carelog.platform.http import PlainText
from carelog.platform.meetings.schemas import EMAIL_PATTERN
from carelog.platform.meetings.service import check_bookable, slot_taken
from carelog.platform.payments import queries
from carelog.platform.payments.orgs import record_ref
from carelog.platform.schedule.schemas import Timezone
from carelog.platform.subjects.identity import subject_directory

ACTOR = "system:checkout"
HOLD_SECONDS = 31 * 60  # Stripe's shortest session lifetime is 30 minutes
log = logging.getLogger("carelog.payments")


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    start_time: AwareDatetime = Field(description="slot start, with a UTC offset")
    guest_email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    guest_name: PlainText = Field(min_length=1, max_length=200)
    timezone: Timezone = Field(description="the guest's IANA timezone")
    success_url: AnyHttpUrl
    cancel_url: AnyHttpUrl


class CheckoutOut(BaseModel):
    id: str = Field(description="the Checkout Session id (cs_...)")
    url: str | None = Field(description="where to send the guest to pay")
    expires_at: int | None = None


def _not_configured() -> ApiError:
    return ApiError(
        "payments are not configured",
        status_code=503,
        code="PAYMENTS_NOT_CONFIGURED",
        hint="set STRIPE_SECRET_KEY",
    )


async def _event(scopes: Scopes, event_id: uuid.UUID) -> Any:
    async with scopes.public_scope() as public:
        event = (await public.execute(queries.CHECKOUT_EVENT, {"event_id": event_id})).first()
    if event is None:
        raise not_found("event", field="event_id")
    if event.price <= 0:
        raise conflict(
            "this event is free and is booked directly",
            "NO_PAYMENT_REQUIRED",
            field="event_id",
            hint="POST /api/meetings",
        )
    return event


async def create_checkout(scopes: Scopes, settings: Settings, data: CheckoutIn) -> CheckoutOut:
    if settings.stripe_secret_key is None or not settings.stripe_secret_key.get_secret_value():
        raise _not_configured()
    secret_key = settings.stripe_secret_key.get_secret_value()
    event = await _event(scopes, data.event_id)
    start = data.start_time.astimezone(dt.UTC)
    end = start + dt.timedelta(minutes=event.duration_in_minutes)
    org, expert = event.org_id, event.workos_user_id
    async with scopes.system_scope(ACTOR, org) as session:
        await check_bookable(session, org, expert, start, end, data.guest_email)
        rate = await session.scalar(queries.COMMISSION_RATE, {"org_id": org})
        account = await session.scalar(queries.EXPERT_CONNECT_ACCOUNT, {"expert_id": expert})
    fee = int(event.price) * int(rate or 0) // 10_000
    common = {"org_id": str(org), "event_id": str(data.event_id), "expert_id": expert}
    intent_md = {**common, "platform_fee": str(fee)}
    if account:
        intent_md["expert_connect_account_id"] = str(account)
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": event.currency,
                    "unit_amount": int(event.price),
                    "product_data": {"name": event.name},
                },
            }
        ],
        "customer_email": data.guest_email,
        "success_url": str(data.success_url),
        "cancel_url": str(data.cancel_url),
        "expires_at": int(time.time()) + HOLD_SECONDS,
        "metadata": {
            **common,
            "start_time": start.isoformat(),
            "timezone": data.timezone,
            "guest_name": data.guest_name,
            "platform_fee": str(fee),
        },
        "payment_intent_data": {"metadata": intent_md},
    }
    client = stripe.StripeClient(
        secret_key, base_addresses={"api": settings.stripe_api_base}, max_network_retries=1
    )
    try:
        created = await asyncio.to_thread(client.v1.checkout.sessions.create, cast(Any, params))
    except stripe.StripeError as exc:
        log.warning("stripe checkout creation failed", extra={"error": type(exc).__name__})
        raise ApiError(
            "Stripe refused or did not answer; nothing was booked",
            status_code=502,
            code="PAYMENT_PROVIDER_ERROR",
            hint=getattr(exc, "user_message", None) or "try again in a moment",
        ) from None
    try:
        with system_audit(ACTOR, org):
            async with scopes.system_scope(ACTOR, org) as session:
                await session.execute(
                    queries.HOLD_SLOT,
                    {
                        "org_id": org,
                        "event_id": data.event_id,
                        "expert_id": expert,
                        "guest_email": data.guest_email,
                        "start": start,
                        "end": end,
                        "hold_seconds": HOLD_SECONDS,
                        "session_id": created.id,
                    },
                )
                await record_ref(session, org, created.id, "checkout_session")
                # The guest is the data subject from the first step: the payment names them.
                subject = await subject_directory().resolve(
                    session, org, data.guest_email, data.guest_name
                )
                await log_audit_event(
                    "PAYMENT_INITIATED",
                    "payment",
                    created.id,
                    {"new_values": {"status": "checkout_open", "amount": int(event.price)}},
                    {"event_id": str(data.event_id), "platform_fee": fee, "channel": "checkout"},
                    data_subject=subject,
                )
    except IntegrityError:
        raise slot_taken() from None
    return CheckoutOut(id=created.id, url=created.url, expires_at=created.expires_at)
