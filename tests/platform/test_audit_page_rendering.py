"""An audit page rendered by PostgreSQL answers what the response model would have answered.

``GET /api/audit/events`` sends the page the statement rendered instead of validating and
serialising each event in Python. These tests hold the two to the same document, event for
event, with the values that break hand-made JSON: quotes, backslashes, control characters,
non-ASCII text, nested documents, integers wider than 64 bits, decimals, IPv6 and IPv4
addresses, times with and without microseconds; and the page still pages and stays in its
organization.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api

from carelog.audit.filters import AuditFilters
from carelog.audit.query import get_audit_logs
from carelog.db.engine import Database
from carelog.platform.audit_api.schemas import AuditEventOut, AuditEventPage

BASE = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
PROBE = "user_render_probe"  # the actor of the seeded events, and only of them
HOSTILE = 'quote " backslash \\ tab \t newline \n nul-free \x01 \u2028 é 医療 🩺 </script>'
DOCUMENTS = [
    {"note": HOSTILE, "nested": {"list": [1, "two", None, True, {"deep": [[]]}]}},
    {"wide": 123456789012345678901234567890, "negative": -(2**70), "dose": 1.25},
    {"decimal": 0.1, "exp": 1e-7, "zero": 0, "empty": {}, "array": []},
]


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        a, b = env.world.a, env.world.b
        for i in range(7):
            env.execute(
                "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, "
                "resource_type, resource_id, outcome, data_subject_id, created_at, "
                "old_values, new_values, metadata, ip_address, user_agent, request_id) values "
                "(:id, :org, :actor, 'user', 'PROFILE_UPDATED', 'profile', :rid, 'success', "
                ":subject, :at, cast(:old as jsonb), cast(:new as jsonb), cast(:meta as jsonb), "
                ":ip, :agent, :request)",
                id=uuid.uuid4(),
                org=a.org_id,
                actor=PROBE,
                rid=HOSTILE if i == 0 else f"r{i}",
                subject=None if i % 2 else a.patient,
                # Whole seconds, then microseconds with trailing zeros, then six digits.
                at=BASE + timedelta(minutes=i, microseconds=(0, 120000, 654321)[i % 3]),
                old=None if i % 3 == 0 else json.dumps(DOCUMENTS[i % 3]),
                new=json.dumps(DOCUMENTS[(i + 1) % 3]),
                meta=json.dumps(DOCUMENTS[(i + 2) % 3]),
                ip=(None, "2001:db8::1", "203.0.113.9")[i % 3],
                agent=None if i == 3 else HOSTILE,
                request=f"req-{i}",
            )
        env.execute(
            "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, "
            "resource_type, outcome, created_at) values "
            "(:id, :org, 'other', 'user', 'PROFILE_UPDATED', 'profile', 'success', :at)",
            id=uuid.uuid4(),
            org=b.org_id,
            at=BASE,
        )
        yield env


def _owner(api: Api) -> dict[str, str]:
    return api.auth(api.world.a.owner, api.world.a.org_id)


async def _modelled(api: Api, filters: AuditFilters) -> dict[str, Any]:
    """The page as the response model writes it (what the endpoint answered before)."""
    async with api.runtime.scopes.org_scope(api.world.a.owner, api.world.a.org_id) as unit:
        page = await get_audit_logs(unit, api.world.a.org_id, filters)
    model = AuditEventPage(
        items=[AuditEventOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )
    return json.loads(model.model_dump_json())  # type: ignore[no-any-return]


async def test_the_rendered_page_is_the_response_models_page(api: Api) -> None:
    seeded = [r for r in await _all_events(api) if r["workos_user_id"] == PROBE]
    assert len(seeded) == 7
    r = await api.client.get("/api/audit/events", params={"actor_id": PROBE}, headers=_owner(api))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = json.loads(r.content)
    expected = await _modelled(api, AuditFilters(actor_id=PROBE))
    assert body == expected  # every value, wide integers and decimals included
    # The same texts, key order and time form as the model's, not merely equal values.
    first = body["items"][0]
    assert list(first) == list(AuditEventOut.model_fields)
    for got, want in zip(body["items"], expected["items"], strict=True):
        assert got["created_at"] == want["created_at"] and got["created_at"].endswith("Z")
        assert got["ip_address"] == want["ip_address"]
    AuditEventPage.model_validate_json(r.content)  # the documented schema
    wide = [i for i in body["items"] if (i["new_values"] or {}).get("wide")]
    assert wide and wide[0]["new_values"]["wide"] == 123456789012345678901234567890


async def test_rendered_pages_walk_the_same_keyset(api: Api) -> None:
    params: dict[str, Any] = {"limit": 2, "actor_id": PROBE}
    seen: list[str] = []
    for _ in range(10):
        r = await api.client.get("/api/audit/events", params=params, headers=_owner(api))
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [i["id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    everything = await _modelled(api, AuditFilters(actor_id=PROBE, limit=100))
    assert seen == [i["id"] for i in everything["items"]]
    assert len(seen) == 7


async def test_the_rendered_page_stays_in_its_organization(api: Api) -> None:
    b = api.world.b
    r = await api.client.get("/api/audit/events", headers=api.auth(b.owner, b.org_id))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items and all(i["org_id"] == str(b.org_id) for i in items)
    member = await api.client.get(
        "/api/audit/events", headers=api.auth(api.world.a.member, api.world.a.org_id)
    )
    assert member.status_code == 403, member.text


async def _all_events(api: Api) -> list[dict[str, Any]]:
    r = await api.client.get("/api/audit/events", params={"limit": 200}, headers=_owner(api))
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]
