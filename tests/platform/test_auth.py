"""Authentication: only verified tokens of active members reach data; dev tokens never in prod."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from api_harness import Api, running_api
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings
from carelog.db.engine import Database
from carelog.platform.auth.tokens import (
    DevTokenSigner,
    WorkOSTokenVerifier,
    auth_mode,
    dev_signer,
    verifier_from_settings,
    workos_jwks_url,
)

CLIENT_ID = "client_01TEST"
ISSUER = f"https://api.workos.com/user_management/{CLIENT_ID}"


def records(api: Api) -> str:
    return f"/api/appointments/{api.world.a.ids['meeting']}/records"


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


def assert_401(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["reason"]
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_valid_token_reaches_the_endpoint(api: Api) -> None:
    a = api.world.a
    r = await api.client.get(records(api), headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 200, r.text
    # ... but carelog's session cookie does not: it authenticates the viewer only (CSRF)
    api.client.cookies.set("carelog-session", api.token(a.expert, a.org_id))
    try:
        assert (await api.client.get(records(api))).status_code == 401
    finally:
        api.client.cookies.clear()


async def test_missing_and_malformed_tokens_are_401(api: Api, attack_count: Any) -> None:
    assert_401(await api.client.get(records(api)))
    for header in ("Bearer", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Bearer abc"):
        assert_401(await api.client.get(records(api), headers={"Authorization": header}))
    assert api.audit("resource_type = 'medical_record'") == []
    attack_count("tokens: missing and malformed", 5)


async def test_expired_token_is_401(api: Api, attack_count: Any) -> None:
    a = api.world.a
    old = api.signer.issue(a.expert, str(a.org_id), ttl=60, now=time.time() - 3600)
    r = await api.client.get(records(api), headers={"Authorization": f"Bearer {old}"})
    assert_401(r)
    assert "expired" in r.json()["error"]["reason"]
    attack_count("tokens: expired", 1)


async def test_forged_and_wrongly_signed_tokens_are_401(api: Api, attack_count: Any) -> None:
    a = api.world.a
    other = DevTokenSigner(os.urandom(32)).issue(a.expert, str(a.org_id))
    assert_401(await api.client.get(records(api), headers={"Authorization": f"Bearer {other}"}))

    # Payload edited after signing (claims another org): the signature no longer matches.
    good = api.token(a.expert, a.org_id)
    head, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = a.owner
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{head}.{forged_payload}.{sig}"
    assert_401(await api.client.get(records(api), headers={"Authorization": f"Bearer {forged}"}))

    # alg=none and a token signed with the right key but the wrong issuer
    unsigned = jwt.encode({**claims, "sub": a.expert}, key=None, algorithm="none")
    assert_401(await api.client.get(records(api), headers={"Authorization": f"Bearer {unsigned}"}))
    wrong_iss = jwt.encode(
        {**claims, "sub": a.expert, "iss": "someone-else"},
        api.signer._key,
        algorithm="HS256",
    )
    assert_401(await api.client.get(records(api), headers={"Authorization": f"Bearer {wrong_iss}"}))
    attack_count("tokens: forged, re-signed, alg=none, wrong issuer", 4)


async def test_token_for_an_org_the_user_is_not_in_is_403(api: Api) -> None:
    a, b = api.world.a, api.world.b
    r = await api.client.get(records(api), headers=api.auth(a.expert, b.org_id))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"
    # a WorkOS org id the user does not belong to is refused the same way
    r = await api.client.get(records(api), headers=api.auth(a.expert, "org_b"))
    assert r.status_code == 403
    # a malformed org claim
    r = await api.client.get(records(api), headers=api.auth(a.expert, ""))
    assert r.status_code == 401


async def test_suspended_membership_is_403_at_once(api: Api) -> None:
    a = api.world.a
    token = api.auth(a.expert, a.org_id)
    assert (await api.client.get(records(api), headers=token)).status_code == 200
    api.execute(
        "update user_org_memberships set status = 'suspended' where workos_user_id = :u",
        u=a.expert,
    )
    r = await api.client.get(records(api), headers=token)
    assert r.status_code == 403
    assert "suspended" in r.json()["error"]["reason"]


# --------------------------------------------------------------------------- modes


def _prod(**env: str) -> Settings:
    environ = {
        "CARELOG_ENV": "production",
        "CARELOG_DATABASE_URL": "postgresql://x/y?sslmode=require",
        **env,
    }
    return Settings.from_env(environ)


def test_production_refuses_development_tokens(tmp_path: Path) -> None:
    settings = _prod(CARELOG_AUTH_MODE="dev")
    with pytest.raises(ConfigurationError, match="refused in production"):
        auth_mode(settings)
    with pytest.raises(ConfigurationError, match="refused in production"):
        dev_signer(settings)
    with pytest.raises(ConfigurationError, match="refused in production"):
        verifier_from_settings(settings)

    # Production defaults to WorkOS, which needs a client id...
    settings = _prod()
    assert auth_mode(settings) == "workos"
    with pytest.raises(ConfigurationError) as info:
        verifier_from_settings(settings)
    assert info.value.field == "CARELOG_WORKOS_CLIENT_ID"

    # ... and a WorkOS verifier cannot accept a development token (HS256, no WorkOS key).
    settings = _prod(CARELOG_WORKOS_CLIENT_ID=CLIENT_ID)
    verifier = verifier_from_settings(settings)
    assert isinstance(verifier, WorkOSTokenVerifier)
    dev = DevTokenSigner(os.urandom(32)).issue("user_x", "org_x")
    with pytest.raises(Exception, match=r"not signed|malformed"):
        verifier.verify(dev)

    # Development is the default elsewhere, with the key kept in the data dir.
    dev_env = {"CARELOG_DATA_DIR": str(tmp_path)}
    dev_settings = Settings.from_env(dev_env)
    assert auth_mode(dev_settings) == "dev"
    assert isinstance(verifier_from_settings(dev_settings), DevTokenSigner)
    assert (tmp_path / "dev-token-key").exists()


def test_jwks_url_comes_from_the_sdk() -> None:
    assert workos_jwks_url(CLIENT_ID) == f"https://api.workos.com/sso/jwks/{CLIENT_ID}"


def test_dev_token_command(tmp_path: Path) -> None:
    from carelog.cli.dev_commands import app

    env = {"CARELOG_DATA_DIR": str(tmp_path), "CARELOG_ENV": "development"}
    result = CliRunner().invoke(
        app,
        ["token", "--user", "user_1", "--org", "org_1", "--role", "admin", "--ttl", "120"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    claims = dev_signer(Settings.from_env(env)).verify(result.output.strip())
    assert (claims.user_id, claims.org, claims.role) == ("user_1", "org_1", "admin")
    assert 100 < claims.expires_at.timestamp() - time.time() <= 120
    acting = CliRunner().invoke(
        app, ["token", "--user", "user_1", "--org", "org_1", "--act", "admin@x.example"], env=env
    )
    assert acting.exit_code == 0, acting.output
    impersonated = dev_signer(Settings.from_env(env)).verify(acting.output.strip())
    assert (impersonated.user_id, impersonated.impersonator) == ("user_1", "admin@x.example")
    bad = CliRunner().invoke(app, ["token", "--user", "u", "--org", "o", "--role", "root"], env=env)
    assert bad.exit_code != 0


# --------------------------------------------------------------------------- WorkOS mode


class LocalJWKS(jwt.PyJWKClient):
    """A PyJWKClient that serves a local key set instead of fetching the WorkOS URL."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__(workos_jwks_url(CLIENT_ID), cache_keys=True)
        self.local = jwks
        self.fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        return self.local


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _workos_token(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "sid": "session_1", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_workos_mode_verifies_against_the_jwks(fresh_db: Database, tmp_path: Path) -> None:
    key = _rsa()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = LocalJWKS({"keys": [{**jwk, "kid": "key_1", "use": "sig", "alg": "RS256"}]})
    verifier = WorkOSTokenVerifier(CLIENT_ID, jwks_client=jwks)
    async with running_api(fresh_db, tmp_path, verifier=verifier) as api:
        a = api.world.a
        url = records(api)

        async def get(token: str) -> Any:
            return await api.client.get(url, headers={"Authorization": f"Bearer {token}"})

        # WorkOS names the organization by its WorkOS id: resolved through the membership.
        ok = _workos_token(key, "key_1", sub=a.expert, org_id="org_a", role="member")
        r = await get(ok)
        assert r.status_code == 200, r.text
        assert (
            await get(_workos_token(key, "key_1", sub=a.expert, org_id=str(a.org_id)))
        ).status_code == 200
        api.client.cookies.set("carelog-session", ok)
        assert (await api.client.get("/audit")).status_code == 403  # the viewer: not an admin
        api.client.cookies.clear()
        assert jwks.fetches == 1  # cached

        assert_401(await get(_workos_token(_rsa(), "key_1", sub=a.expert, org_id="org_a")))
        assert_401(await get(_workos_token(key, "key_unknown", sub=a.expert, org_id="org_a")))
        assert_401(
            await get(
                _workos_token(
                    key, "key_1", sub=a.expert, org_id="org_a", iss="https://evil.example"
                )
            )
        )
        assert_401(
            await get(
                _workos_token(
                    key, "key_1", sub=a.expert, org_id="org_a", exp=int(time.time()) - 3600
                )
            )
        )
        assert_401(await get(api.token(a.expert, a.org_id)))  # a dev token in WorkOS mode
        r = await get(_workos_token(key, "key_1", sub=a.expert, org_id="org_b"))
        assert r.status_code == 403
