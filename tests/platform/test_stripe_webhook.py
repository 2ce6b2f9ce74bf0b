"""The Stripe webhook over HTTP, with payloads signed exactly the way Stripe signs them."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import Api, running_api

from carelog.core.settings import ENVIRONMENT_VARIABLES
from carelog.db.engine import Database
from carelog.platform.payments import handlers

SECRET = "whsec_test_" + "k" * 24
ACTOR = "system:stripe-webhook"


@pytest.fixture
async def api(
    fresh_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path, settings={"stripe_webhook_secret": SECRET}) as env:
        yield env


def sign(payload: bytes, secret: str = SECRET, at: int | None = None) -> str:
    """``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>">``, as Stripe does."""
    ts = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": kind,
        "data": {"object": obj},
    }


async def deliver(api: Api, evt: dict[str, Any], signature: str | None = "sign") -> httpx.Response:
    payload = json.dumps(evt).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["Stripe-Signature"] = sign(payload)
    elif signature is not None:
        headers["Stripe-Signature"] = signature
    return await api.client.post("/api/webhooks/stripe", content=payload, headers=headers)


def checkout(api: Api, pi: str, session: str = "cs_new", status: str = "paid") -> dict[str, Any]:
    a = api.world.a
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=20)
    return {
        "id": session,
        "object": "checkout.session",
        "payment_intent": pi,
        "payment_status": status,
        "amount_total": 5000,
        "customer_details": {"email": "payer.PII@example.test", "name": "Payer PIINAME"},
        "metadata": {
            "org_id": str(a.org_id),
            "event_id": str(a.ids["public_event"]),
            "expert_id": a.expert,
            "start_time": start.isoformat(),
            "timezone": "Europe/Lisbon",
            "guest_notes": "PHI-NOTES",
            "platform_fee": "1000",
        },
    }


def intent(api: Api, pi: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": pi,
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 5000,
        "currency": "eur",
        "metadata": {"org_id": str(api.world.a.org_id)},
        **extra,
    }


def ours(api: Api, action: str | None = None) -> list[dict[str, Any]]:
    where = "workos_user_id = :u" + (" and action = :a" if action else "")
    return api.audit(where, u=ACTOR, a=action)


def transfer(api: Api, pi: str) -> list[dict[str, Any]]:
    return api.rows("select * from payment_transfers where payment_intent_id = :p", p=pi)


# --------------------------------------------------------------------------- config


def test_the_secret_is_a_documented_variable() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name in ("STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY"):
        assert name in ENVIRONMENT_VARIABLES
        assert f"`{name}`" in readme


# --------------------------------------------------------------------------- signatures


async def test_tampered_body_is_400_and_audited_in_the_targeted_org(
    api: Api, attack_count: Any
) -> None:
    a = api.world.a
    evt = event("payment_intent.succeeded", intent(api, "pi_a"))
    payload = json.dumps(evt).encode()
    signature = sign(payload)
    tampered = payload.replace(b"5000", b"9")
    r = await api.client.post(
        "/api/webhooks/stripe", content=tampered, headers={"Stripe-Signature": signature}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"
    [row] = ours(api, "WEBHOOK_SIGNATURE_INVALID")
    assert (row["org_id"], row["actor_type"], row["outcome"]) == (a.org_id, "system", "denied")
    assert (row["resource_type"], row["resource_id"]) == ("webhook", evt["id"])
    assert row["metadata"]["reason"] == "invalid"
    assert row["metadata"]["payment_intent"] == "pi_a"
    assert str(row["ip_address"]) == "203.0.113.7"
    # Nothing changed.
    assert transfer(api, "pi_a")[0]["status"] == "PENDING"
    assert api.rows("select * from stripe_webhook_events") == []
    attack_count("webhook: tampered body", 1)


async def test_missing_wrong_secret_and_stale_signatures(api: Api, attack_count: Any) -> None:
    evt = event("payment_intent.succeeded", intent(api, "pi_a"))
    assert (await deliver(api, evt, signature=None)).status_code == 400
    payload = json.dumps(evt).encode()
    assert (await deliver(api, evt, signature=sign(payload, "whsec_other"))).status_code == 400
    stale = sign(payload, at=int(time.time()) - 3600)
    assert (await deliver(api, evt, signature=stale)).status_code == 400
    reasons = [r["metadata"]["reason"] for r in ours(api, "WEBHOOK_SIGNATURE_INVALID")]
    assert reasons == ["missing", "invalid", "invalid"]
    attack_count("webhook: missing, wrong-secret and stale signatures", 3)


async def test_forgery_naming_no_known_payment_is_only_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    evt = event("payment_intent.succeeded", intent(api, "pi_unknown"))
    assert (await deliver(api, evt, signature="t=1,v1=00")).status_code == 400
    r = await api.client.post(
        "/api/webhooks/stripe", content=b"not json", headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert r.status_code == 400
    assert ours(api) == []
    assert "no known organization" in caplog.text


# --------------------------------------------------------------------------- handlers


async def test_checkout_creates_the_paid_meeting_and_redelivery_changes_nothing(api: Api) -> None:
    a = api.world.a
    evt = event("checkout.session.completed", checkout(api, "pi_new"))
    r = await deliver(api, evt)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": True, "status": "processed"}
    [meeting] = api.rows("select * from meetings where stripe_session_id = 'cs_new'")
    assert meeting["org_id"] == a.org_id
    assert meeting["stripe_payment_status"] == "succeeded"  # from Stripe's payment_status
    assert meeting["stripe_payment_intent_id"] == "pi_new"
    assert meeting["guest_email"] == "payer.PII@example.test"
    again = await deliver(api, evt)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(api.rows("select id from meetings where stripe_session_id = 'cs_new'")) == 1
    [row] = ours(api)
    assert (row["action"], row["org_id"], row["actor_type"]) == (
        "APPOINTMENT_CREATED",
        a.org_id,
        "system",
    )
    assert row["resource_id"] == str(meeting["id"])
    assert row["metadata"]["channel"] == "checkout"
    assert "PII" not in str(row) and "PHI-NOTES" not in str(row)
    [seen] = api.rows("select * from stripe_webhook_events")
    assert (seen["status"], seen["attempts"], seen["org_id"]) == ("processed", 1, a.org_id)


async def test_unpaid_checkout_stays_pending(api: Api) -> None:
    r = await deliver(
        api, event("checkout.session.completed", checkout(api, "pi_mb", "cs_mb", "unpaid"))
    )
    assert r.status_code == 200
    [m] = api.rows("select stripe_payment_status from meetings where stripe_session_id = 'cs_mb'")
    assert m["stripe_payment_status"] == "pending"


async def test_payment_succeeded_promotes_the_transfer_exactly_once(api: Api) -> None:
    a = api.world.a
    assert (
        await deliver(api, event("payment_intent.succeeded", intent(api, "pi_a")))
    ).status_code == 200
    # A second, distinct event for the same payment intent: still one transfer row.
    assert (
        await deliver(api, event("payment_intent.succeeded", intent(api, "pi_a")))
    ).status_code == 200
    [t] = transfer(api, "pi_a")
    assert t["status"] == "READY"
    [m] = api.rows("select stripe_payment_status from meetings where id = :i", i=a.ids["meeting"])
    assert m["stripe_payment_status"] == "succeeded"
    first, second = ours(api, "PAYMENT_COMPLETED")
    assert first["resource_type"] == "payment" and first["resource_id"] == "pi_a"
    assert first["data_subject_id"] == a.patient
    assert first["metadata"]["transfer"] == "promoted"
    assert second["metadata"]["transfer"] == "unchanged"


async def test_out_of_order_delivery_answers_500_then_succeeds_on_retry(api: Api) -> None:
    early = event("payment_intent.succeeded", intent(api, "pi_new"))
    r = await deliver(api, early)
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "WEBHOOK_HANDLING_FAILED"
    [seen] = api.rows("select * from stripe_webhook_events")
    assert (seen["status"], seen["attempts"]) == ("failed", 1)
    assert "NotYetKnownError" in seen["last_error"]
    assert ours(api) == [] and transfer(api, "pi_new") == []
    assert (
        await deliver(api, event("checkout.session.completed", checkout(api, "pi_new")))
    ).status_code == 200
    retry = await deliver(api, early)  # Stripe's retry of the same event
    assert retry.status_code == 200 and retry.json()["status"] == "processed"
    [t] = transfer(api, "pi_new")
    assert (t["status"], t["checkout_session_id"], t["amount"], t["platform_fee"]) == (
        "READY",
        "cs_new",
        4000,
        1000,
    )
    assert t["requires_approval"] is True  # the expert has no Connect account yet
    [seen] = api.rows(
        "select * from stripe_webhook_events where stripe_event_id = :i", i=early["id"]
    )
    assert (seen["status"], seen["attempts"]) == ("processed", 2)
    assert [r["action"] for r in ours(api)] == ["APPOINTMENT_CREATED", "PAYMENT_COMPLETED"]


async def test_a_failing_handler_answers_500_and_the_retry_applies_everything_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = handlers.HANDLERS["payment_intent.succeeded"]
    calls = 0

    async def flaky(session: Any, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
        nonlocal calls
        calls += 1
        await original(session, org, obj)  # its writes and audit rows roll back
        if calls == 1:
            raise RuntimeError("simulated outage")

    monkeypatch.setitem(handlers.HANDLERS, "payment_intent.succeeded", flaky)
    evt = event("payment_intent.succeeded", intent(api, "pi_a"))
    assert (await deliver(api, evt)).status_code == 500
    assert transfer(api, "pi_a")[0]["status"] == "PENDING"
    assert ours(api) == []
    assert (await deliver(api, evt)).status_code == 200
    assert (await deliver(api, evt)).json()["status"] == "duplicate"
    assert transfer(api, "pi_a")[0]["status"] == "READY"
    assert len(ours(api, "PAYMENT_COMPLETED")) == 1


async def test_payment_failed_marks_meeting_and_transfer(api: Api) -> None:
    a = api.world.a
    failed = intent(
        api, "pi_a", last_payment_error={"code": "card_declined", "message": "Declined"}
    )
    assert (await deliver(api, event("payment_intent.payment_failed", failed))).status_code == 200
    [m] = api.rows("select stripe_payment_status from meetings where id = :i", i=a.ids["meeting"])
    assert m["stripe_payment_status"] == "failed"
    [t] = transfer(api, "pi_a")
    assert (t["status"], t["stripe_error_code"]) == ("FAILED", "card_declined")
    appointment, payment = ours(api)
    assert appointment["action"] == "APPOINTMENT_PAYMENT_FAILED"
    assert appointment["resource_id"] == str(a.ids["meeting"])
    assert appointment["old_values"] == {"stripe_payment_status": "pending"}
    assert appointment["new_values"] == {"stripe_payment_status": "failed"}
    assert payment["action"] == "PAYMENT_FAILED"
    assert payment["metadata"]["error_code"] == "card_declined"
    assert payment["metadata"]["transfers_failed"] == 1
    assert all(
        r["org_id"] == a.org_id and r["actor_type"] == "system" for r in (appointment, payment)
    )


async def test_partial_refund_stays_partial_full_refund_refunds(api: Api) -> None:
    a = api.world.a
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_a",
        "amount": 5000,
        "metadata": {"org_id": str(a.org_id)},
    }
    partial = event("charge.refunded", {**charge, "amount_refunded": 1500})
    assert (await deliver(api, partial)).status_code == 200
    [m] = api.rows("select stripe_payment_status from meetings where id = :i", i=a.ids["meeting"])
    assert m["stripe_payment_status"] == "pending"
    assert transfer(api, "pi_a")[0]["status"] == "PENDING"
    [row] = ours(api, "PAYMENT_REFUNDED")
    assert row["metadata"]["partial"] is True and row["metadata"]["amount_refunded"] == 1500
    assert row["new_values"] == {"status": "partially_refunded"}
    full = event("charge.refunded", {**charge, "amount_refunded": 5000})
    assert (await deliver(api, full)).status_code == 200
    [m] = api.rows("select stripe_payment_status from meetings where id = :i", i=a.ids["meeting"])
    assert m["stripe_payment_status"] == "refunded"
    assert transfer(api, "pi_a")[0]["status"] == "REFUNDED"
    assert ours(api, "PAYMENT_REFUNDED")[1]["metadata"]["transfer"] == "refunded"


async def test_dispute_without_metadata_finds_its_org_and_disputes_the_transfer(api: Api) -> None:
    a = api.world.a
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_1",
        "payment_intent": "pi_a",
        "amount": 5000,
        "reason": "fraudulent",
        "metadata": {},
    }
    assert (await deliver(api, event("charge.dispute.created", dispute))).status_code == 200
    assert transfer(api, "pi_a")[0]["status"] == "DISPUTED"
    [row] = ours(api, "PAYMENT_DISPUTED")
    assert row["org_id"] == a.org_id and row["resource_id"] == "pi_a"
    assert row["metadata"]["reason"] == "fraudulent"


async def test_events_of_other_kinds_are_ignored_unknown_payments_retried(api: Api) -> None:
    r = await deliver(api, event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert r.json()["status"] == "ignored"
    assert api.rows("select * from stripe_webhook_events") == []
    r = await deliver(
        api, event("charge.dispute.created", {"id": "dp", "object": "dispute", "charge": "x"})
    )
    assert r.status_code == 500  # not acknowledged: Stripe delivers it again
    [seen] = api.rows("select * from stripe_webhook_events")
    assert (seen["status"], seen["org_id"]) == ("failed", None)
    assert ours(api) == []
