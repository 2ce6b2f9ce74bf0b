"""Generated input against the audit viewer's routes: whatever arrives, the answer is never a 5xx.

The viewer's HTML routes are not in the OpenAPI schema, so schemathesis cannot reach them
(tests/web/test_schemathesis.py covers the JSON API). Hypothesis generates what a hostile
client can send instead: arbitrary bytes percent-encoded into every filter of the list page
(invalid UTF-8, NUL, encoded lone surrogates, overflowing dates and numbers), arbitrary event
and subject path segments, and arbitrary login tokens and CSRF tokens, all through an owner's
real session cookie on a fresh database with the two-tenant world.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_viewer_http import Env

pytestmark = pytest.mark.slow

EXAMPLES = 60
FILTERS = (
    "start",
    "end",
    "action",
    "resource_type",
    "resource_id",
    "actor",
    "subject",
    "outcome",
    "cursor",
    "before",
)
NASTY = st.sampled_from(
    [
        b"\x00",
        b"\xed\xa0\x80",  # a lone surrogate, as UTF-8-ish bytes
        b"9999-12-31",
        b"99999-01-01T00:00:00",
        b"-1",
        b"1e309",
        b"2024-02-30",
        b"%",
        b"'; drop table audit_logs; --",
        b'=HYPERLINK("http://x")',
        "\u202e".encode(),
        b"x" * 5000,
    ]
)
VALUES = st.one_of(st.binary(max_size=64), NASTY, st.text(max_size=64).map(str.encode))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _query(params: dict[str, bytes]) -> str:
    return "&".join(f"{k}={quote_from_bytes(v, safe='')}" for k, v in params.items())


def _segment(raw: bytes) -> str:
    return quote_from_bytes(raw, safe="") or "x"


def _no_server_error(r: Any, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])


@FUZZ
@given(params=st.dictionaries(st.sampled_from(FILTERS), VALUES, max_size=6))
async def test_list_page_filters(env: Env, params: dict[str, bytes], attack_count: Any) -> None:
    env.login(env.world.a.owner, env.world.a.org_id)
    r = await env.client.get(f"/audit?{_query(params)}")
    _no_server_error(r, params)
    attack_count("input abuse: viewer list filters (generated)", 1)


@FUZZ
@given(raw=VALUES, page=st.sampled_from(["events", "subjects", "subjects-accounting"]))
async def test_path_segments(env: Env, raw: bytes, page: str, attack_count: Any) -> None:
    env.login(env.world.a.owner, env.world.a.org_id)
    segment = _segment(raw)
    path = {
        "events": f"/audit/events/{segment}",
        "subjects": f"/audit/subjects/{segment}",
        "subjects-accounting": f"/audit/subjects/{segment}/accounting",
    }[page]
    r = await env.client.get(path)
    _no_server_error(r, path)
    attack_count("input abuse: viewer path segments (generated)", 1)


@FUZZ
@given(token=st.text(max_size=300), csrf=st.text(max_size=100))
async def test_login_and_verify_forms(env: Env, token: str, csrf: str, attack_count: Any) -> None:
    body = f"token={quote(token, errors='surrogatepass')}"
    r = await env.client.post(
        "/audit/login",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _no_server_error(r, "login")
    env.login(env.world.a.owner, env.world.a.org_id)
    r = await env.client.post(
        "/audit/integrity/verify",
        content=f"csrf_token={quote(csrf, errors='surrogatepass')}".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _no_server_error(r, "verify")
    assert r.status_code >= 400, r.status_code  # a forged CSRF token never verifies
    attack_count("input abuse: viewer forms (generated)", 2)
