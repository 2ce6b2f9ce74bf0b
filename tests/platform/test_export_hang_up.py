"""A client that hangs up in the middle of a large HTTP export, against a real uvicorn.

The JSONL export streams from a ``COPY`` that holds the request's database connection until
it ends. A hang-up must close the export at once (not when the garbage collector gets to it):
the export is recorded as ``aborted``, the COPY is gone from the server, and the connection
goes back to the pool usable, so the next requests are answered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from carelog.db.engine import Database
from carelog.platform.auth.tokens import DevTokenSigner
from carelog.runtime import Runtime
from carelog.web.app import create_app
from dbtools import TestServer
from serving import served_in_thread
from world import World, build_world

EVENTS = 200_000


@dataclass
class Served:
    url: str
    db: Database
    world: World
    signer: DevTokenSigner

    def owner(self) -> dict[str, str]:
        token = self.signer.issue(self.world.a.owner, str(self.world.a.org_id), role="owner")
        return {"Authorization": f"Bearer {token}"}

    def scalar(self, sql: str, **params: object) -> object:
        with self.db.sync_engine("admin").connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()


@pytest.fixture
def served(pg: TestServer, template_db: str, tmp_path: object) -> Iterator[Served]:
    name = pg.create_database(template=template_db)
    db = pg.database(name)
    world = build_world(db.sync_engine("admin"))
    with db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action,"
                " resource_type, resource_id, outcome, metadata, created_at)"
                " SELECT gen_random_uuid(), :org, 'bulk' || (g % 50), 'user',"
                " 'PROFILE_UPDATED', 'profile', 'r' || g, 'success',"
                " jsonb_build_object('i', g, 'pad', repeat('x', 200)),"
                " now() - make_interval(secs => g)"
                " FROM generate_series(1, :n) AS g"
            ),
            {"org": world.a.org_id, "n": EVENTS},
        )
    signer = DevTokenSigner(os.urandom(32))
    runtime = Runtime(db.settings, db, spool_dir=f"{tmp_path}/spool", token_verifier=signer)
    try:
        with served_in_thread(create_app(runtime)) as url:
            yield Served(url, db, world, signer)
    finally:
        db.close()
        pg.drop_database(name)


def _wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_hang_up_mid_export_is_recorded_and_frees_the_connection(served: Served) -> None:
    org = served.world.a.org_id
    with (
        httpx.Client(base_url=served.url, timeout=30) as client,
        client.stream("GET", "/api/audit/export", headers=served.owner()) as response,
    ):
        assert response.status_code == 200
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > 1 << 20:
                break  # leaving the block closes the connection mid-stream
    assert received < 40 << 20  # far from the whole export: this was a hang-up

    _wait_for(
        lambda: (
            served.scalar(
                "select count(*) from audit_log_exports where org_id = :o and status = 'aborted'",
                o=org,
            )
            == 1
        ),
        "the export is not recorded as aborted",
    )
    _wait_for(
        lambda: (
            served.scalar(
                "select count(*) from pg_stat_activity where query like 'COPY (SELECT %'"
                " and state = 'active'"
            )
            == 0
        ),
        "the COPY still runs on the server",
    )
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for _ in range(12):  # more than the pool holds: every connection must be usable
            page = client.get("/api/audit/events", params={"limit": 5}, headers=served.owner())
            assert page.status_code == 200, page.text
            assert len(page.json()["items"]) == 5
    _wait_for(
        lambda: (
            served.scalar(
                "select count(*) from audit_logs where org_id = :o"
                " and action = 'AUDIT_LOG_EXPORT_ABORTED'",
                o=org,
            )
            == 1
        ),
        "no AUDIT_LOG_EXPORT_ABORTED event",
    )
