"""The booking a completed Checkout Session stands for, in either metadata shape.

carelog's checkout (``checkout.py``) writes flat keys (``org_id``, ``event_id``, ``expert_id``,
``start_time``...). Sessions opened before the cut-over carry three JSON strings instead:
``meeting`` ``{id: event id, expert, guest, guestName, start, dur, notes, timezone}``,
``payment`` ``{amount, fee, expert}`` and ``transfer`` ``{status, account, ...}``, and no
``org_id`` (the organization is found through the event id, see ``orgs.py``). Both are read
here so a session paid after the deployment still becomes a meeting.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from carelog.platform.meetings.service import PaidBooking
from carelog.platform.payments.orgs import legacy_blob

_CHECKOUT_STATUS = {"paid": "succeeded", "no_payment_required": "succeeded", "unpaid": "pending"}


class CheckoutMetadataError(ValueError):
    """The session lacks what a booking needs (which key, in which shape)."""


def _first(*values: object) -> str | None:
    for value in values:
        if value is not None and str(value).strip():
            return str(value)
    return None


def _required(value: str | None, key: str) -> str:
    if value is None:
        raise CheckoutMetadataError(f"checkout metadata lacks {key}")
    return value


def is_legacy(metadata: Mapping[str, Any]) -> bool:
    return "org_id" not in metadata and "meeting" in metadata


def platform_fee(metadata: Mapping[str, Any], obj: Mapping[str, Any]) -> int | None:
    """The platform's fee in cents, from either shape."""
    fee = _first(metadata.get("platform_fee"), legacy_blob(obj, "payment").get("fee"))
    return int(float(fee)) if fee is not None else None


def connect_account(metadata: Mapping[str, Any], obj: Mapping[str, Any]) -> str | None:
    """The expert's Connect account, when the payment names it (either shape)."""
    return _first(
        metadata.get("expert_connect_account_id"), legacy_blob(obj, "transfer").get("account")
    )


def booking_from_checkout(obj: Mapping[str, Any]) -> PaidBooking:
    md: Mapping[str, Any] = obj.get("metadata") or {}
    customer: Mapping[str, Any] = obj.get("customer_details") or {}
    if is_legacy(md):
        meeting = legacy_blob(obj, "meeting")
        payment = legacy_blob(obj, "payment")
        event_id = meeting.get("id") or meeting.get("eventId")
        expert = _first(meeting.get("expert"), payment.get("expert"))
        email = _first(customer.get("email"), meeting.get("guest"), meeting.get("guestEmail"))
        name = _first(customer.get("name"), meeting.get("guestName")) or ""
        notes = _first(meeting.get("notes"), meeting.get("guestNotes"))
        start = _first(meeting.get("start"), meeting.get("startTime"))
        timezone = _first(meeting.get("timezone"), meeting.get("locale")) or "UTC"
        guest_user = guest_org = None
        prefix = "meeting."
    else:
        event_id = md.get("event_id")
        expert = _first(md.get("expert_id"))
        email = _first(customer.get("email"), md.get("guest_email"))
        name = _first(customer.get("name"), md.get("guest_name")) or ""
        notes = _first(md.get("guest_notes"))
        start = _first(md.get("start_time"))
        timezone = _first(md.get("timezone")) or "UTC"
        guest_user = _first(md.get("guest_workos_user_id"))
        guest_org = _first(md.get("guest_org_id"))
        prefix = ""
    try:
        return PaidBooking(
            event_id=uuid.UUID(_required(_first(event_id), prefix + "event id")),
            expert_id=_required(expert, prefix + "expert"),
            guest_email=_required(email, "customer_details.email"),
            guest_name=name,
            guest_notes=notes,
            start_time=datetime.fromisoformat(
                _required(start, prefix + "start").replace("Z", "+00:00")
            ),
            timezone=timezone,
            session_id=str(obj["id"]),
            payment_intent_id=_first(obj.get("payment_intent")),
            payment_status=_CHECKOUT_STATUS.get(obj.get("payment_status") or "", "pending"),
            amount=obj.get("amount_total"),
            application_fee=platform_fee(md, obj),
            guest_workos_user_id=guest_user,
            guest_org_id=uuid.UUID(guest_org) if guest_org else None,
        )
    except CheckoutMetadataError:
        raise
    except ValueError:  # the message could quote a value; name the shape only
        shape = "legacy meeting/payment" if prefix else "flat"
        raise CheckoutMetadataError(f"{shape} checkout metadata is malformed") from None
