"""Schedule over HTTP: validation, owner-only writes, the exact audit rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_harness import Api, running_api

from carelog.db.engine import Database

WEEK = {
    "timezone": "Europe/Berlin",
    "availabilities": [
        {"day_of_week": "tuesday", "start_time": "9:00", "end_time": "12:00"},
        {"day_of_week": "tuesday", "start_time": "13:00", "end_time": "17:30"},
    ],
}


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


async def test_put_schedule_replaces_windows_and_audits_old_and_new(api: Api) -> None:
    a = api.world.a
    r = await api.client.put("/api/schedule", json=WEEK, headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["timezone"] == "Europe/Berlin"
    assert [w["start_time"] for w in body["availabilities"]] == ["09:00", "13:00"]
    windows = api.rows(
        "select day_of_week::text as d from schedule_availabilities where org_id = :o", o=a.org_id
    )
    assert [w["d"] for w in windows] == ["tuesday", "tuesday"]  # monday's window is gone
    [row] = api.audit("action = 'SCHEDULE_UPDATED'")
    assert row["org_id"] == a.org_id
    assert row["workos_user_id"] == a.expert
    assert row["actor_type"] == "user"
    assert row["outcome"] == "success"
    assert row["resource_type"] == "schedule"
    assert row["resource_id"] == str(a.ids["schedule"])
    assert row["old_values"] == {
        "timezone": "Europe/Lisbon",
        "availabilities": [{"day_of_week": "monday", "start_time": "09:00", "end_time": "17:00"}],
    }
    assert row["new_values"]["timezone"] == "Europe/Berlin"
    assert len(row["new_values"]["availabilities"]) == 2
    assert str(row["ip_address"]) == "203.0.113.7"
    setup = api.rows(
        "select availability_completed from expert_setup where org_id = :o", o=a.org_id
    )
    assert setup == [{"availability_completed": True}]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "body.timezone"),
        (
            {"availabilities": [{"day_of_week": "monday", "start_time": "9", "end_time": "10:00"}]},
            "body.availabilities.0.start_time",
        ),
        (
            {
                "availabilities": [
                    {"day_of_week": "monday", "start_time": "25:00", "end_time": "26:00"}
                ]
            },
            "body.availabilities.0.start_time",
        ),
        (
            {
                "availabilities": [
                    {"day_of_week": "monday", "start_time": "11:00", "end_time": "10:00"}
                ]
            },
            "body.availabilities.0",
        ),
        (
            {
                "availabilities": [
                    {"day_of_week": "monday", "start_time": "09:00", "end_time": "11:00"},
                    {"day_of_week": "monday", "start_time": "10:30", "end_time": "12:00"},
                ]
            },
            "body",
        ),
        (
            {
                "availabilities": [
                    {"day_of_week": "funday", "start_time": "09:00", "end_time": "10:00"}
                ]
            },
            "body.availabilities.0.day_of_week",
        ),
    ],
)
async def test_invalid_schedules_are_422_with_the_field(
    api: Api, patch: dict[str, object], field: str
) -> None:
    a = api.world.a
    r = await api.client.put(
        "/api/schedule", json={**WEEK, **patch}, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert api.audit("action = 'SCHEDULE_UPDATED'") == []


async def test_schedule_needs_a_token_an_expert_and_a_membership(api: Api) -> None:
    a, b = api.world.a, api.world.b
    assert (await api.client.put("/api/schedule", json=WEEK)).status_code == 401
    r = await api.client.put("/api/schedule", json=WEEK, headers=api.auth(a.member, a.org_id))
    assert r.status_code == 403
    # Org B's expert with a token for org A: not a member there.
    r = await api.client.put("/api/schedule", json=WEEK, headers=api.auth(b.expert, a.org_id))
    assert r.status_code == 403
    assert api.audit("action = 'SCHEDULE_UPDATED'") == []
    tz = api.rows("select timezone from schedules where org_id = :o", o=a.org_id)
    assert tz == [{"timezone": "Europe/Lisbon"}]


async def test_blocked_dates_add_remove_and_audit_without_the_reason(api: Api) -> None:
    a, b = api.world.a, api.world.b
    headers = api.auth(a.expert, a.org_id)
    body = {"date": "2031-05-04", "timezone": "Europe/Lisbon", "reason": "surgery PHI-REASON"}
    r = await api.client.post("/api/schedule/blocked-dates", json=body, headers=headers)
    assert r.status_code == 201, r.text
    blocked_id = r.json()["id"]
    again = await api.client.post("/api/schedule/blocked-dates", json=body, headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "date"
    bad = await api.client.post(
        "/api/schedule/blocked-dates", json={"date": "2031-02-30"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "body.date"
    # Another org's expert cannot remove it (404: it does not exist for them).
    r = await api.client.delete(
        f"/api/schedule/blocked-dates/{blocked_id}", headers=api.auth(b.expert, b.org_id)
    )
    assert r.status_code == 404
    r = await api.client.delete(f"/api/schedule/blocked-dates/{blocked_id}", headers=headers)
    assert r.status_code == 204
    added, removed = api.audit("action like 'BLOCKED_DATE_%'")
    assert added["action"] == "BLOCKED_DATE_ADDED"
    assert added["resource_type"] == "blocked_date"
    assert added["resource_id"] == str(blocked_id)
    assert added["new_values"] == {"date": "2031-05-04", "timezone": "Europe/Lisbon"}
    assert added["metadata"] == {"has_reason": True}
    assert removed["action"] == "BLOCKED_DATE_REMOVED"
    assert removed["old_values"] == {"date": "2031-05-04", "timezone": "Europe/Lisbon"}
    assert (removed["org_id"], removed["workos_user_id"]) == (a.org_id, a.expert)
    assert "PHI-REASON" not in str(api.audit())
