"""audit_logs policies run once per statement, not once per partition (migration 0008).

audit_logs has a partition per month; a policy's membership look-up used to be planned as a
one-time filter on every partition scan. Through the app role (RLS applies), the owner's first
page must show exactly one evaluation of ``app.is_org_admin()`` in its plan, as an InitPlan,
and PostgreSQL's own call counter must see the membership function run once, while the
statement still scans many partitions and still refuses a non-admin.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from carelog.audit.filters import AuditFilters
from carelog.audit.query import select_events
from carelog.db.engine import Database
from dbtools import TestServer
from world import World, build_world


@pytest.fixture(scope="module")
def world_db(pg: TestServer, template_db: str) -> Iterator[tuple[Database, World]]:
    name = pg.create_database(template=template_db)
    db = pg.database(name)
    world = build_world(db.sync_engine("admin"))
    # Count calls of non-inlined SQL functions in this database only (a superuser setting).
    with psycopg.connect(_conninfo(db, "admin"), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'all'")
    yield db, world
    db.close()
    pg.drop_database(name)


def _conninfo(db: Database, kind: str) -> str:
    url = db.url_for(kind)  # type: ignore[arg-type]
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _page_sql(org: uuid.UUID) -> tuple[str, dict[str, object]]:
    stmt = select_events(org, AuditFilters()).limit(51)
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]
    return str(compiled), dict(compiled.params)


def _as_app(db: Database, user: str, org: uuid.UUID) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(_conninfo(db, "app"))
    conn.execute(
        "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)",
        (user, str(org)),
    )
    return conn


def test_owner_page_evaluates_the_membership_policy_once(world_db: tuple[Database, World]) -> None:
    db, world = world_db
    sql, params = _page_sql(world.a.org_id)
    with _as_app(db, world.a.owner, world.a.org_id) as conn:
        plan = "\n".join(
            row[0] for row in conn.execute(f"EXPLAIN (VERBOSE, COSTS OFF) {sql}", params)
        )
        partitions = set(re.findall(r"on public\.(audit_logs_\w+)", plan))
        assert len(partitions) >= 12, plan  # the monthly partitions are all scanned
        assert plan.count("current_org_role()") == 1, plan  # once, not once per partition
        assert re.search(r"InitPlan", plan), plan
        # and PostgreSQL's own counter agrees: one membership look-up for the whole page
        rows = conn.execute(sql, params).fetchall()
        calls = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
            "WHERE schemaname = 'app' AND funcname = 'current_org_role'"
        ).fetchone()
        assert calls is not None and calls[0] == 1, calls
        assert rows  # the world has audit rows for org A


def test_hoisted_policies_still_refuse_non_admins_and_other_orgs(
    world_db: tuple[Database, World],
) -> None:
    db, world = world_db
    sql, params = _page_sql(world.a.org_id)
    with _as_app(db, world.a.member, world.a.org_id) as conn:  # a plain member: no trail
        assert conn.execute(sql, params).fetchall() == []
    with _as_app(db, world.b.owner, world.b.org_id) as conn:  # B's owner asking for A's rows
        assert conn.execute(sql, params).fetchall() == []
    with _as_app(db, world.a.owner, world.b.org_id) as conn:  # A's owner with B's context
        sql_b, params_b = _page_sql(world.b.org_id)
        assert conn.execute(sql_b, params_b).fetchall() == []


def test_the_membership_look_up_keeps_its_plan_for_the_session(
    world_db: tuple[Database, World],
) -> None:
    """Every tenant policy calls ``app.current_org_role()``. As a LANGUAGE sql function that
    reads a table it could not be inlined, and PostgreSQL planned its query again on every
    guarded statement (its InitPlan took 0.39-0.54 ms on a warm connection, against
    0.06-0.07 ms now: docs/performance.md). PL/pgSQL keeps the prepared plan for the session
    (migration 0011); the policies' answers are the other tests' business."""
    db, _ = world_db
    with psycopg.connect(_conninfo(db, "admin")) as conn:
        row = conn.execute(
            "SELECT l.lanname, p.provolatile, p.prosecdef FROM pg_proc p"
            " JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.oid = 'app.current_org_role()'::regprocedure"
        ).fetchone()
    assert row == ("plpgsql", "s", False)  # cached plan; stable; the caller's own rights


@pytest.mark.parametrize("reader", ["records", "rendered"])
async def test_page_queries_keep_a_generic_plan(
    world_db: tuple[Database, World], reader: str
) -> None:
    """A page query is prepared by the driver and, after PostgreSQL's first few custom plans,
    runs on its generic plan: not planned again over every partition on every request
    (planning cost twice the execution). A bound ``LIMIT`` made the generic plan look ten
    times dearer and it was never chosen (``carelog.audit.query.page_limit``)."""
    from carelog.audit.query import get_audit_logs
    from carelog.audit.rendered import rendered_page
    from carelog.db.session import Scopes

    db, world = world_db
    scopes = Scopes(db)
    org, read = world.a.org_id, get_audit_logs if reader == "records" else rendered_page
    rendered = "not " if reader == "records" else ""
    # One unit: the same pooled connection, so the driver's prepared statement is reused.
    async with scopes.org_scope(world.a.owner, org) as unit:
        for _ in range(20):
            await read(unit, org, AuditFilters(limit=50))
        rows = (
            await unit.execute(
                sa.text(
                    "select generic_plans, custom_plans from pg_prepared_statements "
                    "where statement like '%FROM audit_logs%' and statement like '%LIMIT 51%' "
                    f"and statement {rendered}like '%json_build_object%'"
                )
            )
        ).all()
    assert len(rows) == 1, rows
    generic, custom = rows[0]
    assert generic >= 5 and custom <= 5, rows[0]
