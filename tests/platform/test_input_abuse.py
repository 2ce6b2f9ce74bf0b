"""Input abuse: overflowing dates, NUL and unpaired surrogates get a clear 4xx, never a 500.

Real-shaped requests through the whole app (API and viewer) on a real database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api

from carelog.db.engine import Database
from carelog.platform.auth.cookies import SESSION_COOKIE


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


VIEWER_PROBES = [
    "/audit?end=9999-12-31",
    "/audit?start=9999-12-31&end=9999-12-31",
    "/audit?action=%00",
    "/audit?actor_id=a%00b",
    "/audit?data_subject_id=%ED%A0%80",
    "/audit/subjects/%00",
    "/audit/subjects/x%00y",
    "/audit/events/%00",
]


async def test_viewer_refuses_bad_input_without_a_500(api: Api, attack_count: Any) -> None:
    a = api.world.a
    api.client.cookies.set(SESSION_COOKIE, api.token(a.owner, a.org_id))
    for path in VIEWER_PROBES:
        r = await api.client.get(path)
        assert r.status_code < 500, (path, r.status_code, r.text[:300])
        assert r.status_code in (200, 400, 404, 422), (path, r.status_code)
    api.client.cookies.clear()
    attack_count("viewer: overflowing dates, NUL in filters and pages", len(VIEWER_PROBES))


SURROGATE = "\ud800"


async def test_lone_surrogates_are_a_422(api: Api, attack_count: Any) -> None:
    a = api.world.a
    expert = api.auth(a.expert, a.org_id)
    bodies = [
        ("POST", "/api/schedule/blocked-dates", {"date": "2031-01-06", "reason": SURROGATE}),
        (
            "POST",
            f"/api/appointments/{a.ids['meeting']}/records",
            {"content": "note", "metadata": {"k": "v" + SURROGATE}},
        ),
        (
            "POST",
            f"/api/appointments/{a.ids['meeting']}/records",
            {"content": "note", "metadata": {SURROGATE: 1}},
        ),
        (
            "POST",
            f"/api/appointments/{a.ids['meeting']}/records",
            {"content": "x" + SURROGATE},
        ),
    ]
    for method, url, body in bodies:
        # json.dumps escapes the surrogate as \ud800, exactly what a hostile client sends
        import json

        r = await api.client.request(
            method,
            url,
            content=json.dumps(body).encode(),
            headers={**expert, "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (url, r.status_code, r.text[:300])
    attack_count("input abuse: unpaired surrogates", len(bodies))


async def test_oversized_bodies_are_refused_before_parsing(api: Api, attack_count: Any) -> None:
    a = api.world.a
    url = f"/api/appointments/{a.ids['meeting']}/records"
    big = b'{"content": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = await api.client.post(
        url,
        content=big,
        headers={**api.auth(a.expert, a.org_id), "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "BODY_TOO_LARGE"

    async def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 65536

    r = await api.client.post(
        "/api/webhooks/stripe", content=chunks(), headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert r.status_code == 413
    attack_count("input abuse: oversized bodies", 2)


async def test_phi_responses_are_never_cached(api: Api) -> None:
    a = api.world.a
    for path in (
        f"/api/appointments/{a.ids['meeting']}/records",
        "/api/audit/events",
        "/api/audit/export",
    ):
        r = await api.client.get(path, headers=api.auth(a.owner, a.org_id))
        assert r.headers["cache-control"] == "no-store", path
        assert r.headers["x-content-type-options"] == "nosniff", path
