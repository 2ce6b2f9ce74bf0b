"""Stripe's real object shapes: disputes and refunds without metadata, delayed-payment failures,
Connect account updates and checkouts opened before the cut-over, all signed by the SDK."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api
from stripe_harness import SECRET, deliver_signed, stripe_event, stripe_object

from carelog.db.engine import Database

ACTOR = "system:stripe-webhook"
CHARGE = "ch_1PgafuB7WZ01zgkWXYmPNZs8"  # the charge Stripe's dispute and refund fixtures name


@pytest.fixture
async def api(
    fresh_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path, settings={"stripe_webhook_secret": SECRET}) as env:
        yield env


def ours(api: Api, action: str) -> list[dict[str, Any]]:
    return api.audit("workos_user_id = :u and action = :a", u=ACTOR, a=action)


def transfer(api: Api, pi: str = "pi_a") -> dict[str, Any]:
    [row] = api.rows("select * from payment_transfers where payment_intent_id = :p", p=pi)
    return row


def seen(api: Api, event_id: str) -> dict[str, Any]:
    [row] = api.rows("select * from stripe_webhook_events where stripe_event_id = :i", i=event_id)
    return row


async def paid(api: Api, pi: str = "pi_a", charge: str = CHARGE) -> None:
    """payment_intent.succeeded as Stripe sends it for carelog's checkout (org in metadata)."""
    intent = stripe_object(
        "payment_intent",
        id=pi,
        amount=5000,
        amount_received=5000,
        currency="eur",
        status="succeeded",
        latest_charge=charge,
        metadata={"org_id": str(api.world.a.org_id)},
    )
    r = await deliver_signed(api, stripe_event("payment_intent.succeeded", intent))
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- disputes


async def test_a_real_dispute_is_resolved_through_its_charge_and_holds_the_transfer(
    api: Api,
) -> None:
    a = api.world.a
    await paid(api)
    dispute = stripe_object("dispute")
    assert dispute["metadata"] == {} and dispute["payment_intent"] is None  # Stripe's shape
    evt = stripe_event("charge.dispute.created", dispute)
    r = await deliver_signed(api, evt)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed"
    t = transfer(api)
    assert (t["status"], t["requires_approval"]) == ("DISPUTED", True)
    [row] = ours(api, "PAYMENT_DISPUTED")
    assert (row["org_id"], row["resource_id"]) == (a.org_id, "pi_a")
    assert row["metadata"]["charge_id"] == CHARGE
    assert row["metadata"]["dispute_id"] == dispute["id"]
    assert row["data_subject_id"] == a.patient
    assert seen(api, evt["id"])["status"] == "processed"


async def test_an_unresolvable_dispute_is_not_acknowledged_and_is_recorded(api: Api) -> None:
    evt = stripe_event("charge.dispute.created", stripe_object("dispute", charge="ch_unknown"))
    r = await deliver_signed(api, evt)
    assert r.status_code == 500, r.text
    assert r.json()["error"]["code"] == "WEBHOOK_ORGANIZATION_UNKNOWN"
    row = seen(api, evt["id"])
    assert (row["status"], row["org_id"]) == ("failed", None)
    assert "OrganizationUnknownError" in row["last_error"] and "ch_unknown" in row["last_error"]
    assert ours(api, "PAYMENT_DISPUTED") == []
    assert transfer(api)["status"] == "PENDING"
    # Stripe's retry, once the payment is known, is handled.
    await paid(api, charge="ch_unknown")
    assert (await deliver_signed(api, evt)).status_code == 200
    row = seen(api, evt["id"])
    assert (row["attempts"], row["status"], row["org_id"]) == (2, "processed", api.world.a.org_id)
    assert transfer(api)["status"] == "DISPUTED"


async def test_a_dispute_cannot_reach_another_organizations_payment(api: Api) -> None:
    """The routing returns organizations, not rows: a charge of org B disputes org B only."""
    b = api.world.b
    intent = stripe_object(
        "payment_intent",
        id="pi_b",
        amount=5000,
        amount_received=5000,
        latest_charge="ch_b",
        metadata={"org_id": str(b.org_id)},
    )
    assert (await deliver_signed(api, stripe_event("payment_intent.succeeded", intent))).is_success
    r = await deliver_signed(
        api, stripe_event("charge.dispute.created", stripe_object("dispute", charge="ch_b"))
    )
    assert r.status_code == 200
    assert transfer(api, "pi_b")["status"] == "DISPUTED"
    assert transfer(api, "pi_a")["status"] == "PENDING"
    [row] = ours(api, "PAYMENT_DISPUTED")
    assert row["org_id"] == b.org_id


# --------------------------------------------------------------------------- refunds


async def test_a_refunded_charge_without_metadata_refunds_the_payment(api: Api) -> None:
    a = api.world.a
    await paid(api)
    charge = stripe_object(
        "charge", id=CHARGE, payment_intent="pi_a", amount=5000, amount_refunded=5000
    )
    assert charge["metadata"] == {}
    r = await deliver_signed(api, stripe_event("charge.refunded", charge))
    assert r.status_code == 200, r.text
    assert transfer(api)["status"] == "REFUNDED"
    [m] = api.rows("select stripe_payment_status from meetings where id = :i", i=a.ids["meeting"])
    assert m["stripe_payment_status"] == "refunded"
    [row] = ours(api, "PAYMENT_REFUNDED")
    assert row["org_id"] == a.org_id and row["metadata"]["partial"] is False


async def test_a_refund_of_a_charge_naming_no_payment_intent_is_found_by_the_charge(
    api: Api,
) -> None:
    await paid(api)
    charge = stripe_object("charge", id=CHARGE, amount=5000, amount_refunded=1000)
    assert charge["payment_intent"] is None
    r = await deliver_signed(api, stripe_event("charge.refunded", charge))
    assert r.status_code == 200, r.text
    [row] = ours(api, "PAYMENT_REFUNDED")
    assert (row["resource_id"], row["metadata"]["partial"]) == ("pi_a", True)


async def test_a_refund_nobody_knows_is_retried(api: Api) -> None:
    charge = stripe_object(
        "charge", id="ch_nobody", payment_intent="pi_nobody", amount_refunded=100
    )
    evt = stripe_event("charge.refunded", charge)
    assert (await deliver_signed(api, evt)).status_code == 500
    assert seen(api, evt["id"])["status"] == "failed"


# --------------------------------------------------------------------------- delayed methods


async def test_async_payment_failed_fails_the_meeting_and_the_transfer(api: Api) -> None:
    a = api.world.a
    api.execute("update meetings set stripe_session_id = 'cs_mb' where id = :i", i=a.ids["meeting"])
    # A voucher expired before the payment intent was confirmed: only the session id is known.
    session = stripe_object(
        "checkout.session", id="cs_mb", payment_status="unpaid", payment_intent=None
    )
    assert session["metadata"] == {}
    r = await deliver_signed(api, stripe_event("checkout.session.async_payment_failed", session))
    assert r.status_code == 200, r.text
    [m] = api.rows("select stripe_payment_status from meetings where id = :i", i=a.ids["meeting"])
    assert m["stripe_payment_status"] == "failed"
    assert transfer(api)["status"] == "FAILED"
    [row] = ours(api, "PAYMENT_FAILED")
    assert row["org_id"] == a.org_id and row["metadata"]["checkout_session"] == "cs_mb"
    assert len(ours(api, "APPOINTMENT_PAYMENT_FAILED")) == 1


async def test_async_payment_failed_of_an_unknown_session_is_retried(api: Api) -> None:
    session = stripe_object("checkout.session", id="cs_nobody")
    evt = stripe_event("checkout.session.async_payment_failed", session)
    assert (await deliver_signed(api, evt)).status_code == 500
    assert seen(api, evt["id"])["status"] == "failed"


# --------------------------------------------------------------------------- Connect accounts


def connect(api: Api, account: str = "acct_a") -> None:
    api.execute(
        "update users set stripe_connect_account_id = :acct where workos_user_id = :u",
        acct=account,
        u=api.world.a.expert,
    )


def account(ready: bool, account_id: str = "acct_a") -> dict[str, Any]:
    obj = stripe_object("account", id=account_id)
    if ready:
        obj.update(details_submitted=True, charges_enabled=True, payouts_enabled=True)
        obj["requirements"] = {**obj["requirements"], "currently_due": [], "disabled_reason": None}
    return obj


async def test_account_updated_flags_decide_whether_payouts_need_approval(api: Api) -> None:
    a = api.world.a
    connect(api)
    api.execute("update payment_transfers set requires_approval = true")
    r = await deliver_signed(api, stripe_event("account.updated", account(True), account="acct_a"))
    assert r.status_code == 200, r.text
    [user] = api.rows(
        "select stripe_connect_charges_enabled c, stripe_connect_payouts_enabled p,"
        " stripe_connect_onboarding_complete o from users where workos_user_id = :u",
        u=a.expert,
    )
    assert (user["c"], user["p"], user["o"]) == (True, True, True)
    assert transfer(api)["requires_approval"] is False
    [row] = ours(api, "PAYOUT_ACCOUNT_UPDATED")
    assert row["org_id"] == a.org_id and row["metadata"]["transfers_released"] == 1
    # A new payment of a ready account: the transfer is created without a hold ...
    checkout = legacy_session(api, "cs_new2", "pi_new2")
    assert (
        await deliver_signed(api, stripe_event("checkout.session.completed", checkout))
    ).is_success
    await paid(api, pi="pi_new2", charge="ch_new2")
    assert transfer(api, "pi_new2")["requires_approval"] is False
    # ... and Stripe's fixture account (requirements past due, payouts disabled) holds again.
    r = await deliver_signed(api, stripe_event("account.updated", account(False), account="acct_a"))
    assert r.status_code == 200
    assert transfer(api)["requires_approval"] is True
    assert transfer(api, "pi_new2")["requires_approval"] is True


async def test_account_updated_of_an_expert_without_payouts_mirrors_the_flags(api: Api) -> None:
    connect(api, "acct_fresh")
    r = await deliver_signed(api, stripe_event("account.updated", account(True, "acct_fresh")))
    assert r.status_code == 200, r.text
    [user] = api.rows(
        "select stripe_connect_payouts_enabled p from users where workos_user_id = :u",
        u=api.world.a.expert,
    )
    assert user["p"] is True
    unknown = stripe_event("account.updated", account(True, "acct_nobody"))
    assert (await deliver_signed(api, unknown)).status_code == 500


# --------------------------------------------------------------------------- legacy checkouts


def legacy_session(
    api: Api, session_id: str = "cs_legacy", pi: str = "pi_legacy"
) -> dict[str, Any]:
    a = api.world.a
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    metadata = {
        "meeting": json.dumps(
            {
                "id": str(a.ids["public_event"]),
                "expert": a.expert,
                "guest": "legacy.guest@example.test",
                "guestName": "Legacy Guest",
                "start": start.isoformat().replace("+00:00", "Z"),
                "dur": 60,
                "notes": "LEGACY-NOTES",
                "timezone": "Europe/Lisbon",
            }
        ),
        "payment": json.dumps({"amount": "5000", "fee": "750", "expert": "4250"}),
        "transfer": json.dumps(
            {"status": "PENDING", "account": "acct_a", "country": "PT", "delay": {"days": 1}}
        ),
    }
    return stripe_object(
        "checkout.session",
        id=session_id,
        payment_intent=pi,
        payment_status="paid",
        amount_total=5000,
        customer_details={**stripe_object("checkout.session")["customer_details"], "email": None},
        metadata=metadata,
    )


async def test_a_checkout_in_the_legacy_metadata_shape_creates_the_meeting(api: Api) -> None:
    a = api.world.a
    r = await deliver_signed(api, stripe_event("checkout.session.completed", legacy_session(api)))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed"
    [m] = api.rows("select * from meetings where stripe_session_id = 'cs_legacy'")
    assert (m["org_id"], m["workos_user_id"], m["guest_email"]) == (
        a.org_id,
        a.expert,
        "legacy.guest@example.test",
    )
    assert m["stripe_application_fee_amount"] == 750
    assert m["stripe_payment_status"] == "succeeded"
    [row] = ours(api, "APPOINTMENT_CREATED")
    assert row["org_id"] == a.org_id and "LEGACY-NOTES" not in str(row)
    # ... and its payment intent (legacy metadata too) finds the meeting and the account.
    intent = stripe_object(
        "payment_intent",
        id="pi_legacy",
        amount=5000,
        amount_received=5000,
        latest_charge="ch_legacy",
        metadata=legacy_session(api)["metadata"],
    )
    assert (await deliver_signed(api, stripe_event("payment_intent.succeeded", intent))).is_success
    t = transfer(api, "pi_legacy")
    assert (t["status"], t["platform_fee"], t["expert_connect_account_id"]) == (
        "READY",
        750,
        "acct_a",
    )
