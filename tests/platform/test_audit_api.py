"""The audit endpoints: admins only, every filter, cursor paging, exports, reports, tenancy."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api

from carelog.db.engine import Database

BASE = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        seed(env)
        yield env


def seed(api: Api) -> None:
    """Ten events in org A (two actors, subjects, outcomes, days) and two in org B."""
    a, b = api.world.a, api.world.b
    rows = []
    for i in range(10):
        rows.append(
            {
                "id": uuid.uuid4(),
                "org": a.org_id,
                "actor": a.expert if i % 2 == 0 else a.member,
                "action": "MEDICAL_RECORD_VIEWED" if i % 3 == 0 else "PROFILE_UPDATED",
                "rtype": "medical_record" if i % 3 == 0 else "profile",
                "rid": f"r{i % 4}",
                "outcome": "denied" if i == 9 else "success",
                "subject": a.patient if i % 3 == 0 else None,
                "at": BASE + timedelta(days=i // 3, hours=i),
            }
        )
    for i in range(2):
        rows.append(
            {
                "id": uuid.uuid4(),
                "org": b.org_id,
                "actor": b.expert,
                "action": "MEDICAL_RECORD_VIEWED",
                "rtype": "medical_record",
                "rid": "rb",
                "outcome": "success",
                "subject": b.patient,
                "at": BASE + timedelta(hours=i),
            }
        )
    for row in rows:
        api.execute(
            "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, "
            "resource_type, resource_id, outcome, data_subject_id, created_at, metadata) values "
            "(:id, :org, :actor, 'user', :action, :rtype, :rid, :outcome, :subject, :at, "
            "'{\"seeded\": true}')",
            **row,
        )


def admin(api: Api) -> dict[str, str]:
    a = api.world.a
    return api.auth(a.owner, a.org_id)


async def events(api: Api, headers: dict[str, str] | None = None, **params: Any) -> Any:
    r = await api.client.get("/api/audit/events", params=params, headers=headers or admin(api))
    assert r.status_code == 200, r.text
    return r.json()


SEEDED = {"start": BASE.isoformat(), "end": (BASE + timedelta(days=30)).isoformat()}


async def test_filters_are_anded(api: Api) -> None:
    a = api.world.a
    page = await events(api, **SEEDED, limit=100)
    assert len(page["items"]) == 10 and page["next_cursor"] is None
    assert {i["org_id"] for i in page["items"]} == {str(a.org_id)}
    times = [i["created_at"] for i in page["items"]]
    assert times == sorted(times, reverse=True)

    viewed = await events(api, **SEEDED, action="MEDICAL_RECORD_VIEWED")
    assert len(viewed["items"]) == 4
    both = await events(api, **SEEDED, action=["MEDICAL_RECORD_VIEWED", "PROFILE_UPDATED"])
    assert len(both["items"]) == 10
    assert len((await events(api, **SEEDED, resource_type="profile"))["items"]) == 6
    assert len((await events(api, **SEEDED, resource_id="r1"))["items"]) == 3
    assert len((await events(api, **SEEDED, actor_id=a.member))["items"]) == 5
    assert len((await events(api, data_subject_id=a.patient))["items"]) == 4
    assert len((await events(api, **SEEDED, outcome="denied"))["items"]) == 1
    combined = await events(api, **SEEDED, actor_id=a.expert, action="MEDICAL_RECORD_VIEWED")
    assert len(combined["items"]) == 2  # i = 0 and 6
    window = await events(api, start=BASE.isoformat(), end=(BASE + timedelta(days=1)).isoformat())
    assert len(window["items"]) == 3
    # Searching is itself on record.
    queried = api.audit("action = 'AUDIT_LOG_QUERIED' and org_id = :o", o=a.org_id)
    assert len(queried) == 10
    assert queried[0]["workos_user_id"] == a.owner


async def test_cursor_paging(api: Api) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {**SEEDED, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await events(api, **params)
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4 and len(seen) == len(set(seen)) == 10
    everything = await events(api, **SEEDED, limit=100)
    assert seen == [i["id"] for i in everything["items"]]

    first = await events(api, **SEEDED, limit=3)
    # a cursor replayed with other filters, or edited, is refused with the field named
    r = await api.client.get(
        "/api/audit/events",
        params={"cursor": first["next_cursor"], "action": "PROFILE_UPDATED"},
        headers=admin(api),
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "cursor"
    r = await api.client.get(
        "/api/audit/events", params={**SEEDED, "cursor": "AAAA"}, headers=admin(api)
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "cursor"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2024-03-01T00:00:00"}, "start"),  # naive
        ({"start": "2024-03-02T00:00:00Z", "end": "2024-03-01T00:00:00Z"}, "start"),
        ({"outcome": "maybe"}, "query.outcome.0"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 5000}, "query.limit"),
    ],
)
async def test_invalid_filters_are_422(api: Api, params: dict[str, Any], field: str) -> None:
    r = await api.client.get("/api/audit/events", params=params, headers=admin(api))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


async def test_exports(api: Api) -> None:
    a = api.world.a
    r = await api.client.get(
        "/api/audit/export",
        params={**SEEDED, "format": "jsonl", "reason": "SOC 2 sample"},
        headers=admin(api),
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 10 and {x["org_id"] for x in lines} == {str(a.org_id)}

    r = await api.client.get(
        "/api/audit/export",
        params={**SEEDED, "format": "csv", "action": "MEDICAL_RECORD_VIEWED"},
        headers=admin(api),
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert len(table) == 4 and {row["action"] for row in table} == {"MEDICAL_RECORD_VIEWED"}

    r = await api.client.get(
        "/api/audit/export", params={**SEEDED, "format": "workos"}, headers=admin(api)
    )
    assert r.status_code == 200
    doc = r.json()
    assert len(doc) == 10 and {"action", "actor", "targets", "occurred_at"} <= set(doc[0])

    bad = await api.client.get("/api/audit/export", params={"format": "xml"}, headers=admin(api))
    assert bad.status_code == 422

    exports = api.rows(
        "select * from audit_log_exports where requested_by = :u and status <> 'started' order by created_at",
        u=a.owner,
    )
    assert [(e["format"], e["status"], e["row_count"]) for e in exports] == [
        ("jsonl", "completed", 10),
        ("csv", "completed", 4),
        ("workos", "completed", 10),
    ]
    assert exports[0]["reason"] == "SOC 2 sample"
    exported = api.audit("action = 'AUDIT_LOG_EXPORTED'")
    assert len(exported) == 3
    assert exported[0]["workos_user_id"] == a.owner and exported[0]["org_id"] == a.org_id
    assert exported[0]["metadata"]["row_count"] == 10


async def test_reports(api: Api) -> None:
    a = api.world.a
    r = await api.client.get(
        "/api/audit/report",
        params={"since": SEEDED["start"], "until": SEEDED["end"]},
        headers=admin(api),
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["total"] == 10 and report["distinct_actors"] == 2
    assert report["phi_accesses"] == 4 and report["phi_subjects"] == 1
    assert report["denied"] == 1
    assert report["by_outcome"] == {"success": 9, "denied": 1}
    assert sum(report["by_day"].values()) == 10
    assert {x["actor_id"] for x in report["top_actors"]} == {a.expert, a.member}

    r = await api.client.get(
        "/api/audit/report",
        params={"since": SEEDED["end"], "until": SEEDED["start"]},
        headers=admin(api),
    )
    assert r.status_code == 422

    r = await api.client.get(
        "/api/audit/access-report", params={"subject": a.patient}, headers=admin(api)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 4 and not body["truncated"]
    assert {e["action"] for e in body["entries"]} == {"MEDICAL_RECORD_VIEWED"}
    assert {e["actor_id"] for e in body["entries"]} == {a.expert, a.member}
    generated = api.audit("action = 'COMPLIANCE_REPORT_GENERATED'")
    assert [g["metadata"]["kind"] for g in generated] == ["compliance", "access"]
    assert generated[1]["data_subject_id"] == a.patient


async def test_access_report_includes_real_record_access(api: Api) -> None:
    """A record written, read by the patient, and refused to a colleague: all in the report."""
    a = api.world.a
    url = f"/api/appointments/{a.ids['meeting']}/records"
    assert (
        await api.client.post(url, json={"content": "x"}, headers=api.auth(a.expert, a.org_id))
    ).status_code == 201
    assert (await api.client.get(url, headers=api.auth(a.member, a.org_id))).status_code == 404
    r = await api.client.get(
        "/api/audit/access-report",
        params={"subject": a.patient, "since": "2025-01-01T00:00:00Z"},
        headers=admin(api),
    )
    entries = r.json()["entries"]
    assert [(e["action"], e["actor_id"], e["outcome"]) for e in entries] == [
        ("MEDICAL_RECORD_VIEWED", a.member, "denied"),
        ("MEDICAL_RECORD_CREATED", a.expert, "success"),
    ]


@pytest.mark.parametrize("who", ["expert", "member"])
async def test_non_admins_are_403(api: Api, who: str) -> None:
    a = api.world.a
    headers = api.auth(getattr(a, who), a.org_id)
    for path, params in (
        ("/api/audit/events", {}),
        ("/api/audit/export", {"format": "csv"}),
        ("/api/audit/report", {"since": SEEDED["start"], "until": SEEDED["end"]}),
        ("/api/audit/access-report", {"subject": a.patient}),
    ):
        r = await api.client.get(path, params=params, headers=headers)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "FORBIDDEN"
    assert (
        api.rows(
            "select count(*) as n from audit_log_exports where requested_by = :u", u=getattr(a, who)
        )[0]["n"]
        == 0
    )


async def test_unauthenticated_is_401(api: Api) -> None:
    r = await api.client.get("/api/audit/events")
    assert r.status_code == 401


async def test_org_b_admin_sees_nothing_of_org_a(api: Api) -> None:
    a, b = api.world.a, api.world.b
    headers = api.auth(b.owner, b.org_id)
    page = await events(api, headers, limit=1000)
    assert page["items"] and {i["org_id"] for i in page["items"]} == {str(b.org_id)}
    assert (await events(api, headers, actor_id=a.expert))["items"] == []
    assert (await events(api, headers, data_subject_id=a.patient))["items"] == []
    r = await api.client.get(
        "/api/audit/access-report", params={"subject": a.patient}, headers=headers
    )
    assert r.json()["count"] == 0
    r = await api.client.get("/api/audit/export", params={"format": "jsonl"}, headers=headers)
    assert {json.loads(x)["org_id"] for x in r.text.splitlines()} == {str(b.org_id)}
    r = await api.client.get(
        "/api/audit/report",
        params={"since": SEEDED["start"], "until": SEEDED["end"]},
        headers=headers,
    )
    assert r.json()["total"] == 2
    # An org A token for the org B admin is refused outright.
    r = await api.client.get("/api/audit/events", headers=api.auth(b.owner, a.org_id))
    assert r.status_code == 403


async def test_verify_is_for_admins(api: Api) -> None:
    a = api.world.a
    r = await api.client.get("/api/audit/verify", headers=api.auth(a.member, a.org_id))
    assert r.status_code == 403
    r = await api.client.get("/api/audit/verify", headers=admin(api))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["org_id"] == str(a.org_id)
    assert {"ok", "leaves", "checkpoints", "problems"} <= set(report)
