"""Starting a paid booking: the Checkout Session is created with the stripe SDK against a
loopback server speaking Stripe's wire format, and carries what the webhook needs."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from api_harness import Api, running_api
from stripe_harness import SECRET, LoopbackStripe, deliver_signed, loopback_stripe, stripe_event

from carelog.db.engine import Database

LISBON = ZoneInfo("Europe/Lisbon")
KEY = "sk_test_" + "c" * 24


@pytest.fixture
def stripe_api() -> Iterator[LoopbackStripe]:
    with loopback_stripe() as server:
        yield server


def stripe_settings(stripe_api: LoopbackStripe, key: str | None = KEY) -> dict[str, object]:
    return {
        "stripe_webhook_secret": SECRET,
        "stripe_secret_key": key,
        "stripe_api_base": stripe_api.url,
    }


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path, stripe_api: LoopbackStripe) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path, settings=stripe_settings(stripe_api)) as env:
        yield env


def monday(hour: int) -> dt.datetime:
    day = dt.datetime.now(LISBON).date() + dt.timedelta(days=8)
    day += dt.timedelta(days=(7 - day.weekday()) % 7)
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=LISBON)


def body(api: Api, start: dt.datetime, **extra: object) -> dict[str, object]:
    return {
        "event_id": str(api.world.a.ids["public_event"]),
        "start_time": start.isoformat(),
        "guest_email": "payer.PII@example.test",
        "guest_name": "Payer PIINAME",
        "timezone": "Europe/Paris",
        "success_url": "https://care.example/booked",
        "cancel_url": "https://care.example/cancelled",
        **extra,
    }


async def test_checkout_session_carries_the_webhooks_metadata_end_to_end(
    api: Api, stripe_api: LoopbackStripe
) -> None:
    a = api.world.a
    r = await api.client.post("/api/checkout/sessions", json=body(api, monday(10)))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["id"].startswith("cs_test_") and out["url"].startswith("https://checkout.stripe")
    [sent] = stripe_api.requests
    assert sent["auth"] == f"Bearer {KEY}"
    params = sent["params"]
    assert params["metadata"]["org_id"] == str(a.org_id)
    assert params["metadata"]["expert_id"] == a.expert
    assert params["payment_intent_data"]["metadata"]["org_id"] == str(a.org_id)
    assert params["line_items"]["0"]["price_data"]["unit_amount"] == "5000"
    assert "guest_notes" not in str(params)
    # The slot is held for the guest, the session routed to the organization, the start audited.
    [hold] = api.rows("select * from slot_reservations where stripe_session_id = :s", s=out["id"])
    assert hold["org_id"] == a.org_id
    [ref] = api.rows("select * from payment_refs where ref = :s", s=out["id"])
    assert ref["org_id"] == a.org_id
    [row] = api.audit("action = 'PAYMENT_INITIATED'")
    assert (row["org_id"], row["resource_id"]) == (a.org_id, out["id"])
    assert "PII" not in str(row)
    assert row["data_subject_id"].startswith("subj_")  # the guest, from the first step
    # Stripe completes the session: the webhook books the meeting from that metadata.
    completed = {
        **stripe_api.sessions[out["id"]],
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_checkout_1",
        "customer_details": {"email": "payer.PII@example.test", "name": "Payer PIINAME"},
    }
    done = await deliver_signed(api, stripe_event("checkout.session.completed", completed))
    assert done.status_code == 200 and done.json()["status"] == "processed", done.text
    [m] = api.rows("select * from meetings where stripe_session_id = :s", s=out["id"])
    assert (m["org_id"], m["stripe_payment_status"], m["stripe_payment_intent_id"]) == (
        a.org_id,
        "succeeded",
        "pi_checkout_1",
    )
    assert m["data_subject_id"].startswith("subj_")


async def test_checkout_refusals_are_clear(api: Api, stripe_api: LoopbackStripe) -> None:
    r = await api.client.post(
        "/api/checkout/sessions", json=body(api, monday(10), guest_notes="knee pain")
    )
    assert r.status_code == 422  # clinical notes never go to the payment processor
    r = await api.client.post("/api/checkout/sessions", json=body(api, monday(3)))
    assert r.status_code == 422 and r.json()["error"]["field"] == "start_time"
    stripe_api.fail = True
    r = await api.client.post("/api/checkout/sessions", json=body(api, monday(11)))
    assert r.status_code == 502 and r.json()["error"]["code"] == "PAYMENT_PROVIDER_ERROR"
    assert api.rows("select * from slot_reservations where stripe_session_id is not null") == []


async def test_checkout_without_a_stripe_key_is_503(
    fresh_db: Database, tmp_path: Path, stripe_api: LoopbackStripe
) -> None:
    settings = stripe_settings(stripe_api, key=None)
    async with running_api(fresh_db, tmp_path, settings=settings) as api:
        r = await api.client.post("/api/checkout/sessions", json=body(api, monday(10)))
    assert r.status_code == 503 and r.json()["error"]["code"] == "PAYMENTS_NOT_CONFIGURED"
    assert stripe_api.requests == []
