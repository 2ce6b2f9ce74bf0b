"""Forging the trail through the database roles: dates, transaction ids, sources, actors.

Each statement is what an attacker holding a runtime role's credentials would send. The
database, not the caller, decides when an event happened and which transaction wrote it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from carelog.db.engine import Database
from dbtools import TestServer
from world import World, build_world

INSERT = (
    "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, resource_type, "
    "created_at, source, txid) values (:id, :org, :actor, :kind, 'RECORD_VIEWED', 'record', "
    "{at}, :source, {txid})"
)


@pytest.fixture(scope="module")
def forge_db(pg: TestServer, template_db: str) -> Iterator[tuple[Database, World]]:
    name = pg.create_database(template=template_db)
    db = pg.database(name)
    world = build_world(db.sync_engine("admin"))
    yield db, world
    db.close()
    pg.drop_database(name)


def _attempt(
    db: Database,
    role: str,
    org: uuid.UUID,
    actor: str,
    *,
    at: str,
    source: str = "live",
    txid: str | None = None,
    user: str | None = None,
) -> str | None:
    """Insert one event as ``role``; the refusal message, or None if the row went in."""
    kind = "system" if actor.startswith("system:") else "user"
    with db.sync_engine(role).connect() as conn, conn.begin() as tx:
        conn.execute(
            sa.text(
                "select set_config('app.user_id', :u, true), set_config('app.org_id', :o, true)"
            ),
            {"u": user or actor, "o": str(org)},
        )
        try:
            sql = INSERT.format(at=at, txid=txid)
            if txid is None:
                sql = INSERT.replace(", txid)", ")").replace(", {txid})", ")").format(at=at)
            conn.execute(
                sa.text(sql),
                {"id": uuid.uuid4(), "org": org, "actor": actor, "kind": kind, "source": source},
            )
        except DBAPIError as exc:
            return str(exc.orig)
        finally:
            tx.rollback()
    return None


RLS = "row-level security"
FORGERIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("writer", "system:sealer", {"at": "now() - interval '3 years'"}, RLS),
    ("writer", "system:sealer", {"at": "now() + interval '1 day'"}, RLS),
    ("writer", "system:sealer", {"at": "'2019-05-01'"}, RLS),
    ("writer", "system:sealer", {"at": "now() - interval '30 days'", "source": "spool"}, RLS),
    ("writer", "system:sealer", {"at": "'2019-05-01'", "source": "imported"}, RLS),
    ("system", "system:job", {"at": "now() - interval '2 years'"}, RLS),
    ("system", "system:job", {"at": "now() - interval '1 day'", "source": "spool"}, RLS),
    ("system", "system:job", {"at": "now()", "txid": "42"}, "permission denied"),
    ("writer", "system:sealer", {"at": "now()", "txid": "42"}, "permission denied"),
    ("app", "user_a_owner", {"at": "now() - interval '1 year'"}, RLS),
    ("writer", "system:Evil Name\n", {"at": "now()"}, RLS),
    ("writer", "user\u0007bell", {"at": "now()"}, RLS),
    ("writer", "u" * 300, {"at": "now()"}, RLS),
]


@pytest.mark.parametrize(("role", "actor", "how", "message"), FORGERIES)
def test_runtime_roles_cannot_date_or_disguise_an_event(
    forge_db: tuple[Database, World],
    role: str,
    actor: str,
    how: dict[str, Any],
    message: str,
    attack_count: Any,
) -> None:
    db, world = forge_db
    refused = _attempt(db, role, world.a.org_id, actor, **how)
    assert refused is not None, f"{role} stored a forged event: {how}"
    assert message in refused
    attack_count("trail integrity: forged time/source/actor", 1)


def test_txid_is_always_the_writing_transactions(forge_db: tuple[Database, World]) -> None:
    """A writer-chosen txid would move an event behind the sealer's horizon (never sealed) or
    ahead of it; no runtime role may name it, so it is the inserting transaction's own."""
    db, world = forge_db
    event_id = uuid.uuid4()
    with db.sync_engine("writer").begin() as conn:
        conn.execute(
            sa.text(INSERT.replace(", txid)", ")").replace(", {txid})", ")").format(at="now()")),
            {
                "id": event_id,
                "org": world.a.org_id,
                "actor": "system:sealer",
                "kind": "system",
                "source": "live",
            },
        )
        mine = conn.execute(sa.text("select pg_current_xact_id()::text::bigint")).scalar_one()
    with db.sync_engine("admin").connect() as conn:
        stored = conn.execute(
            sa.text("select txid from audit_logs where id = :id"), {"id": event_id}
        ).scalar_one()
    assert stored == mine


def test_fresh_events_still_go_in(forge_db: tuple[Database, World]) -> None:
    """The guard refuses forgeries, not the ordinary paths: a live event of now, a spooled one
    from an outage an hour ago, an import through the maintenance role."""
    db, world = forge_db
    org = world.a.org_id
    assert _attempt(db, "writer", org, "system:sealer", at="now()") is None
    assert (
        _attempt(db, "writer", org, "system:sealer", at="now() - interval '1 hour'", source="spool")
        is None
    )
    assert (
        _attempt(
            db, "maintenance", org, "system:legacy-import", at="'2019-05-01'", source="imported"
        )
        is None
    )
    assert _attempt(db, "app", org, world.a.owner, at="now()") is None
