"""Refused access under attack: recorded where it matters, bounded when it floods.

Every probe of a tenant's resource lands in the trail of the organization that owns it (the
prober learns nothing: still a plain 404), and in the caller's own when the caller is known.
Unauthenticated floods hit a rate limit (429 + Retry-After) instead of filling a trail.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api

from carelog.db.engine import Database

DENIED = "action = 'UNAUTHORIZED_ACCESS_ATTEMPT' and outcome = 'denied'"


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


async def test_non_admin_audit_reads_are_recorded(api: Api, attack_count: Any) -> None:
    a = api.world.a
    for path in ("/api/audit/events", "/api/audit/export", "/api/audit/verify"):
        r = await api.client.get(path, headers=api.auth(a.member, a.org_id))
        assert r.status_code == 403
    rows = api.audit(DENIED + " and org_id = :o", o=a.org_id)
    assert [(r["workos_user_id"], r["metadata"]["route"]) for r in rows] == [
        (a.member, "/api/audit/events"),
        (a.member, "/api/audit/export"),
        (a.member, "/api/audit/verify"),
    ]
    attack_count("cross-tenant: non-admin audit reads", 3)


async def test_cross_tenant_probe_lands_in_the_owners_trail(api: Api, attack_count: Any) -> None:
    a, b = api.world.a, api.world.b
    meeting = a.ids["meeting"]
    r = await api.client.post(
        f"/api/meetings/{meeting}/cancel", headers=api.auth(b.expert, b.org_id)
    )
    assert r.status_code == 404
    assert str(a.org_id) not in r.text  # the prober learns nothing
    [owner_row] = api.audit(DENIED + " and org_id = :o", o=a.org_id)
    assert (owner_row["workos_user_id"], owner_row["resource_type"]) == (b.expert, "appointment")
    assert owner_row["resource_id"] == str(meeting)
    [caller_row] = api.audit(DENIED + " and org_id = :o", o=b.org_id)
    assert caller_row["workos_user_id"] == b.expert
    # A token naming an organization its holder does not belong to.
    r = await api.client.get("/api/audit/events", headers=api.auth(b.expert, a.org_id))
    assert r.status_code == 403
    assert len(api.audit(DENIED + " and org_id = :o", o=a.org_id)) == 2
    attack_count("cross-tenant: probes recorded in the owner's trail", 2)


async def test_the_integrity_check_is_recorded(api: Api) -> None:
    a = api.world.a
    r = await api.client.get("/api/audit/verify", headers=api.auth(a.owner, a.org_id))
    assert r.status_code == 200
    [row] = api.audit("action = 'AUDIT_LOG_VERIFIED'")
    assert (row["org_id"], row["workos_user_id"]) == (a.org_id, a.owner)


async def test_unauthenticated_flood_is_bounded(api: Api, attack_count: Any) -> None:
    a = api.world.a
    url = f"/api/meetings/{a.ids['meeting']}/cancel"
    statuses = []
    for i in range(30):
        r = await api.client.post(
            url, headers={"Authorization": f"Bearer junk{i}", "User-Agent": "x" * 5000}
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    rows = api.audit(DENIED + " and org_id = :o", o=a.org_id)
    assert len(rows) == 20  # in the owner's trail, and no more than the limit
    assert {r["workos_user_id"] for r in rows} == {"system:unauthenticated"}
    assert max(len(r["user_agent"] or "") for r in rows) <= 512
    # a garbage id names no tenant: nothing recorded anywhere
    r = await api.client.post(f"/api/meetings/{uuid.uuid4()}/cancel")
    assert r.status_code == 429
    attack_count("rate limits: unauthenticated flood", 30)


async def test_exports_are_rate_limited_per_user(api: Api, attack_count: Any) -> None:
    a = api.world.a
    statuses = []
    for _ in range(12):
        r = await api.client.get(
            "/api/audit/export", params={"format": "jsonl"}, headers=api.auth(a.owner, a.org_id)
        )
        statuses.append(r.status_code)
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
    attack_count("rate limits: exports", 12)
