"""One function per Stripe event type; each runs inside the webhook's unit of work.

They only change state and write audit rows in that same transaction, so a failure rolls back
everything (state and audit) and Stripe's retry starts from scratch. State machines, as fixed
from the reference:

- ``checkout.session.completed``: creates the meeting; its payment status comes from Stripe.
- ``payment_intent.succeeded``: meetings -> succeeded; the payment transfer is inserted as
  READY or promoted from PENDING exactly once (UNIQUE(org_id, payment_intent_id) + ON CONFLICT).
  No meeting yet (delivered before the checkout event) raises :class:`NotYetKnownError`: the
  webhook answers 500 and Stripe delivers it again later, when the meeting exists.
- ``payment_intent.payment_failed``: meetings -> failed, transfer PENDING/READY -> FAILED.
- ``charge.refunded``: only a full refund marks the meeting refunded and the transfer REFUNDED
  (a transfer already paid out is flagged for approval instead); a partial refund changes no
  state and is recorded, with its amount, in the audit metadata.
- ``charge.dispute.created``: transfer -> DISPUTED and held for an admin (found through the
  charge, which disputes name instead of the payment intent).
- ``checkout.session.async_payment_failed``: as ``payment_intent.payment_failed``, for the
  session's payment intent (delayed methods such as Multibanco vouchers).
- ``account.updated``: the expert's Connect flags; they decide whether payouts need approval.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from carelog.audit import log_audit_event
from carelog.db.unit import Unit
from carelog.platform.errors import ApiError
from carelog.platform.meetings import service as meetings
from carelog.platform.payments import queries
from carelog.platform.payments.accounts import account_updated, payouts_ready
from carelog.platform.payments.checkout_metadata import (
    booking_from_checkout,
    connect_account,
    platform_fee,
)
from carelog.platform.payments.orgs import _id, intent_of_charge, record_ref

log = logging.getLogger("carelog.payments")
Handler = Callable[[Unit, uuid.UUID, Mapping[str, Any]], Awaitable[None]]
TRANSFER_DELAY = timedelta(hours=24)


class NotYetKnownError(Exception):
    """The event refers to a meeting that does not exist yet (out-of-order delivery)."""


async def _meetings(session: Unit, org: uuid.UUID, pi: str) -> list[Any]:
    rows = await session.execute(
        queries.MEETINGS_OF_INTENT, {"org_id": org, "payment_intent_id": pi}
    )
    return list(rows)


async def _meetings_of_session(session: Unit, org: uuid.UUID, cs: str) -> str | None:
    pi = await session.scalar(queries.INTENT_OF_CHECKOUT, {"org_id": org, "session_id": cs})
    return str(pi) if pi else None


async def checkout_completed(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
    booking = booking_from_checkout(obj)
    try:
        await meetings.create_paid(session, org, booking)
    except ApiError as exc:
        if exc.code != "SLOT_ALREADY_BOOKED":
            raise
        # Paid, but the slot went to someone else: retrying cannot help. Record it loudly so
        # the payment is refunded by hand (automatic refunds are not built yet).
        log.error(
            "paid checkout lost its slot; refund required",
            extra={"stripe_session": obj["id"], "org_id": str(org)},
        )
        await log_audit_event(
            "APPOINTMENT_CREATED",
            "appointment",
            None,
            None,
            {
                "reason": "slot_already_booked",
                "stripe_session_id": obj["id"],
                "event_id": str(booking.event_id),
            },
            outcome="failure",
        )


async def payment_succeeded(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
    pi = str(obj["id"])
    found = await _meetings(session, org, pi)
    if not found:
        raise NotYetKnownError(f"no meeting for payment intent {pi} yet")
    await session.execute(queries.MEETINGS_SUCCEEDED, {"org_id": org, "payment_intent_id": pi})
    first = found[0]
    md = obj.get("metadata") or {}
    await record_ref(session, org, _id(obj.get("latest_charge")), "charge", pi)
    account = connect_account(md, obj) or await session.scalar(
        queries.EXPERT_CONNECT_ACCOUNT, {"expert_id": first.workos_user_id}
    )
    ready = bool(account) and await payouts_ready(session, str(account))
    amount = int(obj.get("amount_received") or obj.get("amount") or 0)
    fee = int(platform_fee(md, obj) or first.stripe_application_fee_amount or 0)
    row = (
        await session.execute(
            queries.TRANSFER_READY,
            {
                "org_id": org,
                "payment_intent_id": pi,
                "session_id": first.stripe_session_id or "UNKNOWN",
                "event_id": str(first.event_id),
                "account": account or "",
                "expert_id": first.workos_user_id,
                "amount": max(amount - fee, 0),
                "currency": str(obj.get("currency") or "eur"),
                "fee": fee,
                "start": first.start_time,
                "scheduled": first.end_time + TRANSFER_DELAY,
                # No Connect account, or one Stripe does not let pay out yet: an admin decides
                # (``account.updated`` lifts the hold once the account's flags allow it).
                "approval": not ready,
            },
        )
    ).first()
    transfer = "unchanged" if row is None else ("created" if row.inserted else "promoted")
    await log_audit_event(
        "PAYMENT_COMPLETED",
        "payment",
        pi,
        {"new_values": {"status": "succeeded", "amount": amount, "currency": obj.get("currency")}},
        {"meeting_ids": [str(m.id) for m in found], "transfer": transfer},
        data_subject=first.guest_workos_user_id,
    )


async def payment_failed(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
    await _fail_payment(session, org, str(obj["id"]), obj.get("last_payment_error") or {})


async def async_payment_failed(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
    """A delayed method (Multibanco voucher, SEPA debit) of a completed checkout failed."""
    cs = str(obj["id"])
    pi = _id(obj.get("payment_intent")) or await _meetings_of_session(session, org, cs)
    if pi is None or not await _meetings(session, org, pi):
        raise NotYetKnownError(f"no meeting for checkout session {cs} yet")
    await _fail_payment(session, org, pi, {"code": "async_payment_failed"}, checkout_session=cs)


async def _fail_payment(
    session: Unit,
    org: uuid.UUID,
    pi: str,
    error: Mapping[str, Any],
    checkout_session: str | None = None,
) -> None:
    failed = (
        await session.execute(queries.MEETINGS_FAILED, {"org_id": org, "payment_intent_id": pi})
    ).all()
    transfers = await session.execute(
        queries.TRANSFERS_FAILED,
        {
            "org_id": org,
            "payment_intent_id": pi,
            "error_code": error.get("code"),
            "error_message": error.get("message"),
        },
    )
    for m in failed:
        await log_audit_event(
            "APPOINTMENT_PAYMENT_FAILED",
            "appointment",
            m.id,
            {
                "old_values": {"stripe_payment_status": m.before},
                "new_values": {"stripe_payment_status": "failed"},
            },
            {"payment_intent": pi},
            data_subject=m.guest_workos_user_id,
        )
    await log_audit_event(
        "PAYMENT_FAILED",
        "payment",
        pi,
        {"new_values": {"status": "failed"}},
        {
            "meeting_ids": [str(m.id) for m in failed],
            "error_code": error.get("code"),
            "transfers_failed": len(transfers.all()),
            **({"checkout_session": checkout_session} if checkout_session else {}),
        },
        data_subject=failed[0].guest_workos_user_id if failed else None,
    )


async def charge_refunded(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
    pi = await intent_of_charge(session, org, obj)
    found = await _meetings(session, org, pi) if pi else []
    if not found:
        raise NotYetKnownError(f"no meeting for the refunded charge's payment intent {pi} yet")
    await record_ref(session, org, _id(obj.get("id")), "charge", pi)
    amount, refunded = int(obj.get("amount") or 0), int(obj.get("amount_refunded") or 0)
    full = refunded >= amount > 0
    transfer = "unchanged"
    if full:
        params = {"org_id": org, "payment_intent_id": pi}
        await session.execute(queries.MEETINGS_REFUNDED, params)
        done = await session.execute(queries.TRANSFERS_REFUNDED, params)
        flagged = await session.execute(queries.FLAG_REFUNDED_AFTER_PAYOUT, params)
        transfer = "refunded" if done.all() else ("flagged" if flagged.all() else "none")
    await log_audit_event(
        "PAYMENT_REFUNDED",
        "payment",
        pi,
        {"new_values": {"status": "refunded" if full else "partially_refunded"}},
        {
            "charge_id": obj.get("id"),
            "amount": amount,
            "amount_refunded": refunded,
            "partial": not full,
            "meeting_ids": [str(m.id) for m in found],
            "transfer": transfer,
        },
        data_subject=found[0].guest_workos_user_id,
    )


async def dispute_created(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
    """Hold the payout: the transfer is DISPUTED and waits for an admin whatever its flags.

    Stripe's disputes name the charge (``payment_intent`` is often ``null``); the charge was
    recorded with its payment intent when the payment succeeded.
    """
    pi = await intent_of_charge(session, org, obj)
    if pi is None:
        raise NotYetKnownError(f"no payment intent recorded for charge {obj.get('charge')} yet")
    params = {"org_id": org, "payment_intent_id": pi}
    held = (await session.execute(queries.TRANSFERS_DISPUTED, params)).all()
    flagged = (await session.execute(queries.FLAG_DISPUTED_AFTER_PAYOUT, params)).all()
    found = await _meetings(session, org, pi)
    await log_audit_event(
        "PAYMENT_DISPUTED",
        "payment",
        pi,
        {"new_values": {"status": "disputed"}},
        {
            "dispute_id": obj.get("id"),
            "charge_id": _id(obj.get("charge")),
            "reason": obj.get("reason"),
            "amount": obj.get("amount"),
            "transfers_disputed": len(held),
            "transfers_flagged": len(flagged),
            "meeting_ids": [str(m.id) for m in found],
        },
        data_subject=found[0].guest_workos_user_id if found else None,
    )


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": checkout_completed,
    "payment_intent.succeeded": payment_succeeded,
    "payment_intent.payment_failed": payment_failed,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": dispute_created,
    "checkout.session.async_payment_failed": async_payment_failed,
    "account.updated": account_updated,
}
