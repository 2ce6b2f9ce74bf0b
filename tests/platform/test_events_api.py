"""Event types over HTTP: owner-only writes, no cascading deletes, the exact audit rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_harness import Api, running_api

from carelog.db.engine import Database

NEW = {"name": "First visit", "slug": "first-visit", "duration_in_minutes": 45, "price": 6000}


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


async def create(api: Api, **overrides: object) -> dict[str, object]:
    a = api.world.a
    r = await api.client.post(
        "/api/events", json={**NEW, **overrides}, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_create_update_delete_with_audit(api: Api) -> None:
    a = api.world.a
    headers = api.auth(a.expert, a.org_id)
    event = await create(api)
    assert event["order"] == 1 and event["currency"] == "eur" and event["is_active"] is True
    r = await api.client.patch(
        f"/api/events/{event['id']}", json={"price": 7000, "name": "First visit"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["price"] == 7000
    r = await api.client.delete(f"/api/events/{event['id']}", headers=headers)
    assert r.status_code == 204
    created, updated, deleted = api.audit("resource_type = 'event_type'")
    for row in (created, updated, deleted):
        assert (row["org_id"], row["workos_user_id"], row["actor_type"], row["outcome"]) == (
            a.org_id,
            a.expert,
            "user",
            "success",
        )
        assert row["resource_id"] == event["id"]
    assert created["action"] == "EVENT_TYPE_CREATED"
    assert created["new_values"]["slug"] == "first-visit"
    assert created["new_values"]["name"] == "First visit"
    assert updated["action"] == "EVENT_TYPE_UPDATED"
    assert updated["old_values"] == {"price": 6000}  # only what changed
    assert updated["new_values"] == {"price": 7000}
    assert deleted["action"] == "EVENT_TYPE_DELETED"
    assert deleted["old_values"]["price"] == 7000
    assert api.rows("select id from events where id = :i", i=event["id"]) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration_in_minutes": 0}, "body.duration_in_minutes"),
        ({"duration_in_minutes": 721}, "body.duration_in_minutes"),
        ({"price": -1}, "body.price"),
        ({"slug": "Not A Slug"}, "body.slug"),
        ({"currency": "EURO"}, "body.currency"),
        ({"workos_user_id": "user_b_expert"}, "body.workos_user_id"),
    ],
)
async def test_invalid_events_are_422(api: Api, body: dict[str, object], field: str) -> None:
    a = api.world.a
    r = await api.client.post(
        "/api/events", json={**NEW, **body}, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


async def test_duplicate_slug_and_null_patch(api: Api) -> None:
    a = api.world.a
    event = await create(api)
    r = await api.client.post("/api/events", json=NEW, headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 409 and r.json()["error"]["field"] == "slug"
    r = await api.client.patch(
        f"/api/events/{event['id']}", json={"name": None}, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 422


async def test_only_the_owner_in_their_org_may_write(api: Api) -> None:
    a, b = api.world.a, api.world.b
    public = a.ids["public_event"]
    assert (await api.client.post("/api/events", json=NEW)).status_code == 401
    # A plain member of the same org is no expert; B's expert sees no A event.
    r = await api.client.post("/api/events", json=NEW, headers=api.auth(a.member, a.org_id))
    assert r.status_code == 403
    for user, org in ((a.member, a.org_id), (b.expert, b.org_id), (a.owner, a.org_id)):
        r = await api.client.patch(
            f"/api/events/{public}", json={"price": 1}, headers=api.auth(user, org)
        )
        assert r.status_code == 404, (user, r.text)
        r = await api.client.delete(f"/api/events/{public}", headers=api.auth(user, org))
        assert r.status_code == 404
    r = await api.client.patch(
        f"/api/events/{public}", json={"price": 1}, headers=api.auth(b.expert, a.org_id)
    )
    assert r.status_code == 403  # B's expert is not a member of org A
    assert api.rows("select price from events where id = :i", i=public) == [{"price": 5000}]
    assert api.audit("resource_type = 'event_type' and outcome = 'success'") == []
    # every refused PATCH/DELETE of org A's event type is in org A's trail
    probes = api.audit(
        "action = 'UNAUTHORIZED_ACCESS_ATTEMPT' and org_id = :o and resource_id = :r",
        o=a.org_id,
        r=str(public),
    )
    assert len(probes) == 7


async def test_event_with_meetings_cannot_be_deleted(api: Api) -> None:
    a = api.world.a
    r = await api.client.delete(
        f"/api/events/{a.ids['public_event']}", headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "EVENT_HAS_MEETINGS" and "deactivate" in error["hint"]
    assert len(api.rows("select id from meetings where org_id = :o", o=a.org_id)) == 1
    assert api.audit("action = 'EVENT_TYPE_DELETED'") == []


async def test_reorder_is_owner_only_and_audited(api: Api) -> None:
    a, b = api.world.a, api.world.b
    first = await create(api)
    ids = [first["id"], str(a.ids["public_event"]), str(a.ids["event"])]
    r = await api.client.put(
        "/api/events/order", json={"event_ids": ids}, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == ids
    # B's expert cannot reorder A's events (the legacy platform had no check at all).
    r = await api.client.put(
        "/api/events/order", json={"event_ids": ids}, headers=api.auth(b.expert, b.org_id)
    )
    assert r.status_code == 404
    r = await api.client.put(
        "/api/events/order",
        json={"event_ids": [ids[0], ids[0]]},
        headers=api.auth(a.expert, a.org_id),
    )
    assert r.status_code == 422
    [row] = api.audit("action = 'EVENT_TYPES_REORDERED'")
    assert row["org_id"] == a.org_id and row["workos_user_id"] == a.expert
    assert row["new_values"] == {"order": {ids[0]: 0, ids[1]: 1, ids[2]: 2}}
    assert row["old_values"]["order"][ids[0]] == 1
