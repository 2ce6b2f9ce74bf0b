"""WorkOS as it really is: AuthKit tokens from a loopback JWKS, both issuers, audience,
organization-less sessions, impersonation, sealed session cookies and a slow JWKS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import Api, running_api
from cryptography.fernet import Fernet
from workos.session import seal_session_from_auth_response
from workos_harness import API, CLIENT_ID, USER_MANAGEMENT_ISSUER, LoopbackWorkOS, loopback_workos

from carelog.core.errors import ConfigurationError
from carelog.core.settings import ENVIRONMENT_VARIABLES, Settings
from carelog.db.engine import Database
from carelog.platform.auth.tokens import WorkOSTokenVerifier, verifier_from_settings

COOKIE_PASSWORD = Fernet.generate_key().decode()
ADMIN = "support-admin@carelog.example"


@pytest.fixture
def workos() -> Iterator[LoopbackWorkOS]:
    with loopback_workos() as server:
        yield server


def settings_for(server: LoopbackWorkOS, **extra: str) -> Settings:
    env = {
        "CARELOG_AUTH_MODE": "workos",
        "CARELOG_WORKOS_CLIENT_ID": CLIENT_ID,
        "CARELOG_WORKOS_JWKS_URL": server.jwks_url,
        "CARELOG_WORKOS_COOKIE_PASSWORD": COOKIE_PASSWORD,
        **extra,
    }
    return Settings.from_env(env)


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path, workos: LoopbackWorkOS) -> AsyncIterator[Api]:
    verifier = verifier_from_settings(settings_for(workos))
    async with running_api(fresh_db, tmp_path, verifier=verifier) as env:
        yield env


def records(api: Api) -> str:
    return f"/api/appointments/{api.world.a.ids['meeting']}/records"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- settings


def test_workos_settings_are_documented_and_derived(workos: LoopbackWorkOS) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name in (
        "CARELOG_WORKOS_JWKS_URL",
        "CARELOG_WORKOS_API_BASE",
        "CARELOG_WORKOS_AUDIENCE",
        "CARELOG_WORKOS_JWKS_TIMEOUT",
        "CARELOG_WORKOS_COOKIE_PASSWORD",
        "CARELOG_DATABASE_ALLOW_INSECURE_SOCKET",
    ):
        assert name in ENVIRONMENT_VARIABLES and f"`{name}`" in readme, name
    derived = Settings.from_env({"CARELOG_WORKOS_CLIENT_ID": CLIENT_ID}).workos
    assert derived.jwks_url == f"{API}/sso/jwks/{CLIENT_ID}"
    assert derived.issuers == (API, USER_MANAGEMENT_ISSUER)
    custom = Settings.from_env(
        {"CARELOG_WORKOS_CLIENT_ID": CLIENT_ID, "CARELOG_WORKOS_API_BASE": "https://auth.example"}
    ).workos
    assert custom.jwks_url == f"https://auth.example/sso/jwks/{CLIENT_ID}"
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"CARELOG_WORKOS_JWKS_TIMEOUT": "forever"})
    assert info.value.field == "CARELOG_WORKOS_JWKS_TIMEOUT"


# --------------------------------------------------------------------------- issuers, audience


async def test_both_workos_issuers_are_accepted_others_refused(
    api: Api, workos: LoopbackWorkOS
) -> None:
    a = api.world.a
    for issuer in (API, USER_MANAGEMENT_ISSUER):
        r = await api.client.get(records(api), headers=bearer(workos.token(a.expert, iss=issuer)))
        assert r.status_code == 200, (issuer, r.text)
    for issuer in ("https://evil.example", f"{API}/user_management/client_other"):
        r = await api.client.get(records(api), headers=bearer(workos.token(a.expert, iss=issuer)))
        assert r.status_code == 401, issuer
    assert workos.requests == 1  # one JWKS fetch, then the cache


async def test_audience_is_checked_where_configured(
    fresh_db: Database, tmp_path: Path, workos: LoopbackWorkOS
) -> None:
    settings = settings_for(workos, CARELOG_WORKOS_AUDIENCE="carelog-api,carelog-viewer")
    verifier = verifier_from_settings(settings)
    async with running_api(fresh_db, tmp_path, verifier=verifier) as api:
        a = api.world.a
        for aud, status in (("carelog-api", 200), ("carelog-viewer", 200), ("other", 401)):
            token = workos.token(a.expert, aud=aud)
            assert (await api.client.get(records(api), headers=bearer(token))).status_code == status
        r = await api.client.get(records(api), headers=bearer(workos.token(a.expert)))
        assert r.status_code == 401  # no aud at all


# --------------------------------------------------------------------------- no organization


async def test_a_token_without_org_uses_the_single_membership(
    api: Api, workos: LoopbackWorkOS
) -> None:
    a = api.world.a
    r = await api.client.get(records(api), headers=bearer(workos.token(a.expert, org_id=None)))
    assert r.status_code == 200, r.text


async def test_a_token_without_org_and_several_memberships_says_how_to_choose(
    api: Api, workos: LoopbackWorkOS
) -> None:
    a, b = api.world.a, api.world.b
    api.execute(
        "insert into user_org_memberships (workos_user_id, org_id, role) values (:u, :o, 'member')",
        u=a.expert,
        o=b.org_id,
    )
    r = await api.client.get(records(api), headers=bearer(workos.token(a.expert, org_id=None)))
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "ORGANIZATION_REQUIRED" and error["field"] == "org_id"
    assert "choose an organization" in error["reason"]
    assert "org_a" in error["hint"] and "org_b" in error["hint"]
    assert "organization_id" in error["hint"]


# --------------------------------------------------------------------------- impersonation


async def test_impersonation_is_recorded_on_every_event_and_shown(
    api: Api, workos: LoopbackWorkOS
) -> None:
    a = api.world.a
    token = workos.token(a.expert, act={"sub": ADMIN}, sid="session_01IMPERSONATED")
    r = await api.client.get(records(api), headers=bearer(token))
    assert r.status_code == 200, r.text
    rows = api.audit("workos_user_id = :u", u=a.expert)
    assert rows, "the read was audited"
    for row in rows:
        assert row["metadata"]["impersonated_by"] == ADMIN
        assert row["metadata"]["session_id"] == "session_01IMPERSONATED"
    # Without act, nothing is added.
    plain = workos.token(a.expert)
    assert (await api.client.get(records(api), headers=bearer(plain))).status_code == 200
    last = api.audit("workos_user_id = :u", u=a.expert)[-1]
    assert "impersonated_by" not in (last["metadata"] or {})
    # The viewer's list and detail, and the exports, show who really acted.
    owner = bearer(workos.token(a.owner, role="owner"))
    page = await api.client.get("/audit", params={"actor_id": a.expert}, headers=owner)
    assert page.status_code == 200
    assert f'impersonated by <span class="mono">{ADMIN}</span>' in page.text
    detail = await api.client.get(f"/audit/events/{rows[0]['id']}", headers=owner)
    assert "Impersonated by" in detail.text and "session_01IMPERSONATED" in detail.text
    for fmt in ("csv", "jsonl", "workos"):
        export = await api.client.get(
            "/api/audit/export", params={"format": fmt, "actor_id": a.expert}, headers=owner
        )
        assert export.status_code == 200 and ADMIN in export.text, fmt


async def test_an_act_claim_without_actor_is_refused(api: Api, workos: LoopbackWorkOS) -> None:
    token = workos.token(api.world.a.expert, act={"reason": "support"})
    assert (await api.client.get(records(api), headers=bearer(token))).status_code == 401


# --------------------------------------------------------------------------- cookies


def sealed(token: str, password: str = COOKIE_PASSWORD, **extra: Any) -> str:
    return seal_session_from_auth_response(
        access_token=token,
        refresh_token="refresh_01TEST",
        user={"id": "user_x", "object": "user", "email": "x@example.test"},
        cookie_password=password,
        **extra,
    )


async def test_authkit_sealed_session_cookie_is_unsealed(api: Api, workos: LoopbackWorkOS) -> None:
    a = api.world.a
    token = workos.token(a.expert)
    api.client.cookies.set("wos-session", sealed(token))
    try:
        # Cookies authenticate the viewer's pages (a signed-in non-admin sees a 403 page, an
        # unauthenticated visitor is sent to the login page); the JSON API takes bearer only.
        assert (await api.client.get("/audit")).status_code == 403
        assert (await api.client.get(records(api))).status_code == 401
        api.client.cookies.set("wos-session", sealed(token, Fernet.generate_key().decode()))
        assert (await api.client.get("/audit")).status_code == 303
        api.client.cookies.set("wos-session", token)  # a raw token is not an AuthKit session
        assert (await api.client.get("/audit")).status_code == 303
    finally:
        api.client.cookies.clear()


async def test_the_viewer_keeps_its_own_cookie(api: Api, workos: LoopbackWorkOS) -> None:
    a = api.world.a
    token = workos.token(a.owner, role="owner")
    r = await api.client.post(
        "/audit/login",
        content=f"token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://test"},
    )
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("carelog-session=") and "wos-session" not in cookie
    api.client.cookies.clear()


# --------------------------------------------------------------------------- slow JWKS


async def _timed(client: httpx.AsyncClient, url: str) -> float:
    start = time.monotonic()
    r = await client.get(url)
    assert r.status_code == 200, r.text
    return time.monotonic() - start


@pytest.mark.slow
async def test_health_stays_fast_while_the_jwks_is_slow(
    fresh_db: Database, tmp_path: Path, workos: LoopbackWorkOS
) -> None:
    verifier = WorkOSTokenVerifier(
        CLIENT_ID, jwks_url=workos.jwks_url, jwks_timeout=5, jwks_lifespan=3600
    )
    async with running_api(fresh_db, tmp_path, verifier=verifier) as api:
        a = api.world.a
        workos.delay = 2.0
        first = asyncio.create_task(
            api.client.get(records(api), headers=bearer(workos.token(a.expert)))
        )
        await asyncio.sleep(0.2)  # the fetch is under way
        assert not first.done()
        health = await _timed(api.client, "/health")
        assert not first.done(), "health answered while the JWKS fetch was still running"
        assert health < 1.0, health
        assert (await first).status_code == 200
        # Expired cache: the known key keeps serving; the refresh runs in the background.
        verifier.jwks.lifespan = 0
        before = workos.requests
        start = time.monotonic()
        r = await api.client.get(records(api), headers=bearer(workos.token(a.expert)))
        assert r.status_code == 200 and time.monotonic() - start < 1.0
        await asyncio.sleep(2.5)
        assert workos.requests == before + 1


@pytest.mark.slow
async def test_a_jwks_fetch_is_bounded_by_its_timeout(
    fresh_db: Database, tmp_path: Path, workos: LoopbackWorkOS
) -> None:
    verifier = WorkOSTokenVerifier(CLIENT_ID, jwks_url=workos.jwks_url, jwks_timeout=0.5)
    async with running_api(fresh_db, tmp_path, verifier=verifier) as api:
        workos.delay = 3.0
        start = time.monotonic()
        r = await api.client.get(records(api), headers=bearer(workos.token(api.world.a.expert)))
        assert r.status_code == 401 and time.monotonic() - start < 2.0
        # Forged kids do not make carelog fetch again and again.
        workos.delay = 0
        await asyncio.sleep(3.0)
        ok = await api.client.get(records(api), headers=bearer(workos.token(api.world.a.expert)))
        assert ok.status_code == 200
        fetched = workos.requests
        for n in range(5):
            forged = workos.token(api.world.a.expert, kid=f"forged_{n}")
            r = await api.client.get(records(api), headers=bearer(forged))
            assert r.status_code == 401
        assert workos.requests == fetched


# --------------------------------------------------------------------------- database TLS


def test_production_refuses_a_database_url_without_tls() -> None:
    base = {"CARELOG_ENV": "production", "CARELOG_WORKOS_CLIENT_ID": CLIENT_ID}
    for url in (
        "postgresql://carelog@db.example:5432/carelog",
        "postgresql://carelog@db.example/carelog?sslmode=prefer",
        "postgresql://carelog@db.example/carelog?sslmode=disable",
        "postgresql:///carelog?host=/run/postgresql",  # a socket, but not allowed explicitly
    ):
        with pytest.raises(ConfigurationError) as info:
            Settings.from_env({**base, "CARELOG_DATABASE_URL": url})
        assert info.value.field == "CARELOG_DATABASE_URL", url
        assert "sslmode=require" in (info.value.hint or "")
    for mode in ("require", "verify-ca", "verify-full"):
        Settings.from_env({**base, "CARELOG_DATABASE_URL": f"postgresql://h/db?sslmode={mode}"})
    allow = {**base, "CARELOG_DATABASE_ALLOW_INSECURE_SOCKET": "1"}
    Settings.from_env({**allow, "CARELOG_DATABASE_URL": "postgresql:///carelog?host=/run/pg"})
    with pytest.raises(ConfigurationError):  # TCP never, even when sockets are allowed
        Settings.from_env({**allow, "CARELOG_DATABASE_URL": "postgresql://db.example/carelog"})
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(
            {
                **base,
                "CARELOG_DATABASE_URL": "postgresql://h/db?sslmode=require",
                "CARELOG_APP_DATABASE_URL": "postgresql://app@h/db",
            }
        )
    assert info.value.field == "CARELOG_APP_DATABASE_URL"
    # Development is not affected.
    Settings.from_env({"CARELOG_DATABASE_URL": "postgresql://localhost/carelog"})
