"""The request path's statements, counted on the app role's real connection.

The context and the caller's membership are one statement (``app.enter_org``), the first of
the unit; nothing else on the request path reads ``user_org_memberships``; a checkout from the
pool does not cost a ping round trip. Suspended members are still refused.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_harness import Api, running_api
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from psycopg import pq

from carelog.db.engine import Database
from carelog.db.unit import observing_statements


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []
    with observing_statements(lambda sql: seen.append(" ".join(sql.split()))):
        yield seen


async def test_context_and_membership_are_one_statement(api: Api) -> None:
    a = api.world.a
    url = f"/api/appointments/{a.ids['meeting']}/records"
    headers = api.auth(a.expert, a.org_id)
    created = await api.client.post(url, json={"content": "note"}, headers=headers)
    assert created.status_code == 201, created.text
    with statements() as seen:
        r = await api.client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    assert seen and "app.enter_org" in seen[0], seen
    assert not any("set_config" in s for s in seen), seen  # no separate context statement
    assert sum("user_org_memberships" in s for s in seen) == 0, seen


@contextmanager
def on_the_wire(api: Api, tmp_path: Path) -> Iterator[list[list[str]]]:
    """What the app role's connections send, as libpq traces it (``PQtrace``): one list of
    frontend messages per unit of work, from the pool's check-out to its check-in."""
    pool = api.db.async_engine("app").sync_engine.pool
    units: list[list[str]] = []
    files: dict[int, Any] = {}

    def checkout(dbapi: Any, record: Any, proxy: Any) -> None:
        handle = (tmp_path / f"trace-{len(files)}.txt").open("w")
        files[id(dbapi)] = handle
        pgconn = dbapi.driver_connection.pgconn
        pgconn.trace(handle.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def checkin(dbapi: Any, record: Any) -> None:
        handle = files.pop(id(dbapi), None)
        if handle is None:
            return
        dbapi.driver_connection.pgconn.untrace()
        handle.close()
        lines = Path(handle.name).read_text().splitlines()
        units.append(
            [
                line.split("\t", 3)[2:][0] + " " + "".join(line.split("\t", 3)[3:])
                for line in lines
                if line.startswith("F\t")
            ]
        )

    sa.event.listen(pool, "checkout", checkout)
    sa.event.listen(pool, "checkin", checkin)
    try:
        yield units
    finally:
        sa.event.remove(pool, "checkout", checkout)
        sa.event.remove(pool, "checkin", checkin)


def round_trips(messages: list[str]) -> int:
    """Each simple ``Query``, and each extended-protocol exchange (ended by ``Sync``), is one
    wait for the server."""
    return sum(m.startswith(("Query", "Sync")) for m in messages)


async def test_begin_travels_with_the_context_on_the_wire(api: Api, tmp_path: Path) -> None:
    """The PHI read is three round trips on the app role's connection, counted from libpq's
    own protocol trace: BEGIN with the context and membership (one simple query), the
    meeting's parties with its records (one statement), and the view's audit event with the
    COMMIT (one simple query). No BEGIN of its own; the encrypted write is as many (the record
    inserted by the statement that reads the parties, its event with the COMMIT)."""
    a = api.world.a
    url = f"/api/appointments/{a.ids['meeting']}/records"
    headers = api.auth(a.expert, a.org_id)
    assert (await api.client.post(url, json={"content": "n"}, headers=headers)).status_code == 201
    with on_the_wire(api, tmp_path) as units:
        r = await api.client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    assert len(units) == 1, units
    messages = units[0]
    assert messages[0].startswith("Query") and "BEGIN; " in messages[0], messages
    assert "app.enter_org" in messages[0], messages
    assert not any(m.startswith("Query") and m.rstrip().endswith('"BEGIN"') for m in messages)
    last = messages[-1]
    assert last.startswith("Query") and "INSERT INTO audit_logs" in last, messages
    assert last.rstrip().endswith('COMMIT"'), messages
    assert round_trips(messages) == 3, messages
    with on_the_wire(api, tmp_path) as units:
        created = await api.client.post(url, json={"content": "n2"}, headers=headers)
    assert created.status_code == 201, created.text
    assert len(units) == 1 and round_trips(units[0]) == 3, units


async def test_a_suspended_member_is_still_refused(api: Api) -> None:
    a = api.world.a
    api.execute(
        "update user_org_memberships set status = 'suspended' "
        "where workos_user_id = :u and org_id = :o",
        u=a.expert,
        o=a.org_id,
    )
    r = await api.client.get(
        f"/api/appointments/{a.ids['meeting']}/records", headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 403 and "suspended" in r.text, r.text


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _asynchronous(call: Callable[..., Any]) -> bool:
    """What FastAPI awaits in the event loop: a coroutine or async generator function, or an
    object whose ``__call__`` is one."""
    method = getattr(call, "__call__", None)  # noqa: B004 - a callable object's own method
    return any(
        inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (call, method)
    )


def test_no_request_hops_to_the_thread_pool() -> None:
    """FastAPI runs a plain ``def`` endpoint or dependency in a worker thread: a thread hop, a
    wake-up and a GIL hand-over on every request (a profile of the audited endpoints found 16
    such threads busy under load for ``def`` dependencies that only read app state). Every
    endpoint and dependency of the service is a coroutine (or an async generator)."""
    from carelog.platform.routers import ROUTERS
    from carelog.web.viewer import router as viewer_router
    from carelog.web.viewer.accounting import router as accounting_router

    sync = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', call)}"
            for router in (*ROUTERS, viewer_router, accounting_router)
            for route in router.routes
            if isinstance(route, APIRoute)
            for call in _calls(route.dependant)
            if not _asynchronous(call)
        }
    )
    assert sync == [], sync


async def test_routes_on_the_app_router_document_what_include_router_would(api: Api) -> None:
    """The service puts every router's routes on its own router (``add_routes``: FastAPI's
    ``include_router`` adds a matching layer to every request). The OpenAPI document stays
    the one ``include_router`` gives, and every route is reached."""
    from carelog.platform.routers import ROUTERS
    from carelog.web.viewer import router as viewer_router
    from carelog.web.viewer.accounting import router as accounting_router

    included = FastAPI()
    for router in (*ROUTERS, accounting_router, viewer_router):
        included.include_router(router)
    ours, theirs = api.app.openapi()["paths"], included.openapi()["paths"]
    assert {p: ours[p] for p in theirs} == theirs
    assert set(ours) - set(theirs) == {"/health", "/ready"}
    for path in ("/health", "/api/audit/events", "/audit"):
        assert (await api.client.get(path)).status_code in (200, 303, 401), path
