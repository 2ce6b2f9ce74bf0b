"""Meetings over HTTP: public booking of free events, slot rules, double booking, cancelling."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_harness import Api, running_api

from carelog.db.engine import Database

LISBON = ZoneInfo("Europe/Lisbon")
GUEST = {
    "guest_email": "guest.PII@example.test",
    "guest_name": "Guest PIINAME",
    "guest_notes": "knee pain PHI-NOTES",
    "timezone": "Europe/Paris",
}


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


def monday(hour: int, minute: int = 0, weeks: int = 1) -> dt.datetime:
    """A Monday between 8 and 14 days ahead (+ n weeks), wall-clock in Lisbon."""
    day = dt.datetime.now(LISBON).date() + dt.timedelta(days=8)
    day += dt.timedelta(days=(7 - day.weekday()) % 7 + 7 * (weeks - 1))
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LISBON)


async def book(api: Api, event: uuid.UUID, start: dt.datetime, **extra: object) -> httpx.Response:
    body = {"event_id": str(event), "start_time": start.isoformat(), **GUEST, **extra}
    return await api.client.post("/api/meetings", json=body)


@pytest.fixture
def event(api: Api) -> uuid.UUID:
    api.execute(
        "insert into events (org_id, workos_user_id, name, slug, duration_in_minutes, price)"
        " values (:o, :u, 'Free intro', 'free-intro', 30, 0)",
        o=api.world.a.org_id,
        u=api.world.a.expert,
    )
    [row] = api.rows(
        "select id from events where slug = 'free-intro' and org_id = :o", o=api.world.a.org_id
    )
    return uuid.UUID(str(row["id"]))


async def test_public_booking_creates_a_meeting_and_a_minimal_audit_row(
    api: Api, event: uuid.UUID
) -> None:
    a = api.world.a
    start = monday(10)
    r = await book(api, event, start)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "booked" and body["stripe_payment_status"] == "succeeded"
    [meeting] = api.rows("select * from meetings where id = :i", i=body["id"])
    assert meeting["org_id"] == a.org_id and meeting["workos_user_id"] == a.expert
    assert meeting["end_time"] - meeting["start_time"] == dt.timedelta(minutes=30)
    [row] = api.audit("action = 'APPOINTMENT_CREATED'")
    assert row["org_id"] == a.org_id
    assert row["workos_user_id"] == "system:public-booking"
    assert row["actor_type"] == "system"
    assert row["outcome"] == "success"
    assert (row["resource_type"], row["resource_id"]) == ("appointment", body["id"])
    assert row["metadata"] == {"event_id": str(event), "channel": "public_booking"}
    assert str(row["ip_address"]) == "203.0.113.7"
    dump = str(row)
    for secret in ("PII", "PIINAME", "PHI-NOTES"):
        assert secret not in dump
    # The guest's details are there only sealed under their subject's key (erasable).
    for name in ("guest_email", "guest_name", "guest_notes"):
        assert row["new_values"][name].startswith("sealed:aes256gcm:dk_")
    assert row["data_subject_id"].startswith("subj_") and row["schema_version"] == 2


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"stripe_payment_status": "succeeded"}, "body.stripe_payment_status"),
        ({"stripe_session_id": "cs_forged"}, "body.stripe_session_id"),
        ({"guest_email": "not-an-email"}, "body.guest_email"),
        ({"timezone": "Nowhere/City"}, "body.timezone"),
        ({"start_time": "2031-01-06T10:00:00"}, "body.start_time"),
    ],
)
async def test_clients_cannot_set_payment_state_or_send_garbage(
    api: Api, event: uuid.UUID, extra: dict[str, object], field: str
) -> None:
    r = await book(api, event, monday(10), **extra)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert api.rows("select id from meetings where event_id = :e", e=event) == []


async def test_slot_rules(api: Api, event: uuid.UUID) -> None:
    a = api.world.a
    cases = [
        (monday(10, 7), "INVALID_TIME_SLOT"),  # off the 15-minute grid
        (monday(16, 45), "INVALID_TIME_SLOT"),  # 30 minutes do not fit before 17:00
        (monday(8, 30), "INVALID_TIME_SLOT"),  # before the window
        (monday(10) + dt.timedelta(days=1), "INVALID_TIME_SLOT"),  # Tuesday: no window
        (monday(10) - dt.timedelta(days=21), "INVALID_TIME_SLOT"),  # in the past
        (monday(10, weeks=10), "INVALID_TIME_SLOT"),  # beyond the 60-day window
    ]
    for start, code in cases:
        r = await book(api, event, start)
        assert r.status_code == 422, (start, r.text)
        assert r.json()["error"] == {**r.json()["error"], "code": code, "field": "start_time"}
    blocked = monday(10, weeks=2)
    api.execute(
        "insert into blocked_dates (org_id, workos_user_id, date, timezone) values (:o, :u, :d,"
        " 'Europe/Lisbon')",
        o=a.org_id,
        u=a.expert,
        d=blocked.date(),
    )
    assert (await book(api, event, blocked)).status_code == 422
    r = await book(api, a.ids["public_event"], monday(10))
    assert r.status_code == 409 and r.json()["error"]["code"] == "PAYMENT_REQUIRED"
    r = await book(api, a.ids["event"], monday(10))
    assert r.status_code == 404  # inactive: not public
    assert (await book(api, uuid.uuid4(), monday(10))).status_code == 404
    assert api.audit("action = 'APPOINTMENT_CREATED'") == []


async def test_overlapping_and_buffered_slots_are_refused(api: Api, event: uuid.UUID) -> None:
    a = api.world.a
    assert (await book(api, event, monday(10))).status_code == 201
    for start in (monday(10), monday(10, 15)):
        r = await book(api, event, start)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "SLOT_ALREADY_BOOKED"
    assert (await book(api, event, monday(10, 30))).status_code == 201
    api.execute(
        "insert into scheduling_settings (org_id, workos_user_id, after_event_buffer)"
        " values (:o, :u, 15) on conflict (org_id, workos_user_id)"
        " do update set after_event_buffer = 15",
        o=a.org_id,
        u=a.expert,
    )
    assert (await book(api, event, monday(11))).status_code == 409  # inside the buffer
    assert (await book(api, event, monday(11, 15))).status_code == 201


async def test_concurrent_bookings_of_one_slot_give_exactly_one_meeting(
    api: Api, event: uuid.UUID
) -> None:
    start = monday(14)
    results = await asyncio.gather(*(book(api, event, start) for _ in range(8)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 7
    assert len(api.rows("select id from meetings where event_id = :e", e=event)) == 1
    assert len(api.audit("action = 'APPOINTMENT_CREATED'")) == 1


async def test_cancel_by_host_and_by_guest(api: Api) -> None:
    a, b = api.world.a, api.world.b
    meeting = a.ids["meeting"]
    url = f"/api/meetings/{meeting}/cancel"
    assert (await api.client.post(url)).status_code == 401
    r = await api.client.post(url, headers=api.auth(b.expert, b.org_id))
    assert r.status_code == 404  # another org's expert does not see it
    r = await api.client.post(url, headers=api.auth(a.member, a.org_id))
    assert r.status_code == 404
    r = await api.client.post(url, headers=api.auth(a.owner, a.org_id))
    assert r.status_code == 403  # the org's owner sees it but is neither host nor guest
    r = await api.client.post(url, headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    again = await api.client.post(url, headers=api.auth(a.expert, a.org_id))
    assert again.status_code == 409
    [row] = api.audit("action = 'APPOINTMENT_CANCELLED'")
    assert (row["org_id"], row["workos_user_id"], row["actor_type"]) == (a.org_id, a.expert, "user")
    assert row["data_subject_id"] == a.patient
    assert row["old_values"] == {"status": "booked"} and row["new_values"] == {
        "status": "cancelled"
    }
    assert row["metadata"]["cancelled_by"] == "host"
    # The guest cancels theirs in org B, from their personal organization.
    r = await api.client.post(
        f"/api/meetings/{b.ids['meeting']}/cancel", headers=api.auth(b.patient, b.patient_org_id)
    )
    assert r.status_code == 200, r.text
    [guest_row] = api.audit("action = 'APPOINTMENT_CANCELLED' and workos_user_id = :u", u=b.patient)
    assert guest_row["org_id"] == b.org_id  # the clinic's trail: it owns the meeting
    assert guest_row["metadata"]["cancelled_by"] == "guest"
    assert guest_row["metadata"]["meeting_org_id"] == str(b.org_id)
