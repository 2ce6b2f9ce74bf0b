"""Verified tokens are remembered, never trusted beyond what verification would grant.

The memo (``carelog.platform.auth.tokens.TokenMemo``) spares a client's second request the
decode of the token it sent with its first. It must not turn into a way around verification:
a token that differs by one byte, an expired token, a signed-out token and a token whose
memo entry has aged out all go through the verifier again (and fail where they should).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api

from carelog.db.engine import Database
from carelog.platform.auth.tokens import TokenClaims, TokenMemo


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


class Counting:
    """The service's own verifier, counting the tokens it is asked to verify."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self.mode = inner, 0, inner.mode

    async def averify(self, token: str) -> TokenClaims:
        self.calls += 1
        return await self.inner.averify(token)

    def verify(self, token: str) -> TokenClaims:
        self.calls += 1
        return self.inner.verify(token)  # type: ignore[no-any-return]


def records(api: Api) -> str:
    return f"/api/appointments/{api.world.a.ids['meeting']}/records"


async def test_a_token_is_decoded_once_and_a_tampered_one_still_fails(api: Api) -> None:
    a = api.world.a
    counting = Counting(api.runtime.token_verifier)
    api.runtime.__dict__["token_verifier"] = counting
    token = api.token(a.expert, a.org_id)
    for _ in range(3):
        r = await api.client.get(records(api), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    assert counting.calls == 1
    head, payload, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    r = await api.client.get(
        records(api), headers={"Authorization": f"Bearer {head}.{payload}.{flipped}"}
    )
    assert r.status_code == 401, r.text
    assert counting.calls == 2  # verified, and refused


async def test_a_signed_out_token_is_refused_though_remembered(api: Api) -> None:
    a = api.world.a
    token = api.token(a.expert, a.org_id)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get(records(api), headers=headers)).status_code == 200
    from carelog.platform.auth.dependencies import revoke_token

    class _Request:  # revoke_token needs only the app's state
        app = api.app

    revoke_token(_Request(), token)  # type: ignore[arg-type]
    r = await api.client.get(records(api), headers=headers)
    assert r.status_code == 401 and "signed out" in r.text, r.text


def _claims(expires: float) -> TokenClaims:
    return TokenClaims("user_1", None, None, datetime.fromtimestamp(expires, tz=UTC))


def test_entries_end_with_the_token_or_the_ttl_and_are_bounded() -> None:
    now = [1_000_000.0]
    memo = TokenMemo(ttl=60, size=2, clock=lambda: now[0])
    memo.remember("short", _claims(now[0] + 10))
    memo.remember("long", _claims(now[0] + 3600))
    assert memo.claims("short") and memo.claims("long")
    now[0] += 11
    assert memo.claims("short") is None  # the token expired: verify again (and fail)
    assert memo.claims("long") is not None
    now[0] += 50
    assert memo.claims("long") is None  # ttl: a withdrawn signing key stops counting
    memo.remember("a", _claims(now[0] + 3600))
    memo.remember("b", _claims(now[0] + 3600))
    memo.remember("c", _claims(now[0] + 3600))
    assert memo.claims("a") is None and memo.claims("b") and memo.claims("c")  # bounded
    assert memo.claims("c" + " ") is None


def test_the_memo_keeps_no_token_text() -> None:
    memo = TokenMemo()
    memo.remember("secret.token.text", _claims(time.time() + 600))
    assert all(isinstance(k, bytes) and len(k) == 32 for k in memo._entries)
