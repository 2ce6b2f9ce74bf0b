"""The automatic context: set per request or job, reset with its token, never spoofable."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from carelog.audit.context import (
    AuditContextMiddleware,
    TrustedProxies,
    audit_context,
    bind_actor,
    current_context,
    snapshot,
)
from carelog.audit.errors import AuditInputError, MissingAuditContextError

ORG = uuid.uuid4()


def test_no_context_is_a_clear_error() -> None:
    with pytest.raises(MissingAuditContextError, match="outside any audit context"):
        current_context()


def test_context_is_reset_with_its_token() -> None:
    with audit_context(actor_id="system:job", org_id=ORG) as outer:
        with audit_context(actor_id="user_1", org_id=ORG) as inner:
            assert current_context() is inner
        assert current_context() is outer
        assert outer.actor_type == "system"
    assert snapshot() is None


async def test_no_leak_between_concurrent_tasks() -> None:
    seen: dict[str, str | None] = {}

    async def task(name: str) -> None:
        with audit_context(actor_id=name, org_id=ORG):
            await asyncio.sleep(0.01)
            seen[name] = current_context().actor_id

    await asyncio.gather(*(task(f"user_{i}") for i in range(20)))
    assert seen == {f"user_{i}": f"user_{i}" for i in range(20)}
    assert snapshot() is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"actor_id": "", "org_id": ORG}, "actor_id"),
        ({"actor_id": "system:", "org_id": ORG}, "actor_id"),
        ({"actor_id": "user_1", "org_id": "not-an-org"}, "org_id"),
        # the first release's spelling is still checked under its own name
        ({"actor": "", "org_id": ORG}, "actor"),
        # the actor is given exactly once: neither, or both, is refused
        ({"org_id": ORG}, "actor_id"),
        ({"actor_id": "user_1", "actor": "user_2", "org_id": ORG}, "actor_id"),
    ],
)
def test_bad_context_values(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(AuditInputError) as info, audit_context(**kwargs):  # type: ignore[arg-type]
        pass
    assert info.value.field == field


def test_garbage_ip_is_dropped_not_stored() -> None:
    with audit_context(actor_id="u", org_id=ORG, ip_address="999.1.1.1; DROP") as ctx:
        assert ctx.ip_address is None
    with audit_context(actor_id="u", org_id=ORG, ip_address="2001:DB8::1") as ctx:
        assert ctx.ip_address == "2001:db8::1"


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.5", ["1.2.3.4"], "1.2.3.4"),  # trusted proxy: its view of the client
        ("10.0.0.5", ["6.6.6.6, 1.2.3.4, 10.0.0.7"], "1.2.3.4"),  # spoofed first hop ignored
        ("10.0.0.5", ["10.0.0.8"], "10.0.0.8"),  # only proxies: the farthest
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["garbage"], None),
    ],
)
def test_forwarded_for_only_through_trusted_proxies(
    peer: str, xff: list[str], expected: str | None
) -> None:
    proxies = TrustedProxies.parse("10.0.0.0/8")
    assert proxies.client_address(peer, xff) == expected


def test_invalid_proxy_list_is_a_clear_error() -> None:
    with pytest.raises(AuditInputError) as info:
        TrustedProxies.parse("10.0.0.0/8,not-a-network")
    assert info.value.field == "CARELOG_TRUSTED_PROXIES"


async def test_middleware_sets_and_resets_the_context() -> None:
    captured: list[tuple[str | None, str | None, str | None, str]] = []

    async def app(scope: object, receive: object, send: object) -> None:
        ctx = bind_actor("user_9", ORG)
        captured.append((ctx.actor_id, ctx.ip_address, ctx.user_agent, ctx.request_id))
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    wrapped = AuditContextMiddleware(app, TrustedProxies.parse("127.0.0.1"))
    transport = httpx.ASGITransport(app=wrapped, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(
            "/",
            headers={
                "x-forwarded-for": "198.51.100.7",
                "user-agent": "curl/8",
                "x-request-id": "req-1",
            },
        )
    own, _, client_part = response.headers["x-request-id"].partition("-")
    assert len(own) == 32 and client_part == "req-1"
    assert captured == [("user_9", "198.51.100.7", "curl/8", response.headers["x-request-id"])]
    assert snapshot() is None


def test_the_earlier_spelling_of_the_actor_still_binds_it() -> None:
    with audit_context(actor="system:job", org_id=ORG) as ctx:  # the first release's keyword
        assert ctx.actor_id == "system:job"
