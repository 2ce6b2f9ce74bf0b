"""The cross-tenant attack suite: through the runtime roles, try to break out of the tenant.

For every tenant table a user of org A (each persona: owner, expert, plain member, patient) and
the system role scoped to A try to SELECT, UPDATE, DELETE org B's rows, INSERT rows claiming org
B and move A's rows into B. Then: forged and unset context, audit tampering, role escalation.
Every attempt must fail (SQLSTATE 42501) or see/affect nothing. Each test reports its count;
the session prints the total.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg.errors
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from carelog.db.engine import Database
from carelog.db.schema import GLOBAL_TABLES, TENANT_TABLES, Base
from dbtools import TestServer
from world import Tenant, World, build_world

# Rows of another org that every visitor may read, by design (the booking site's catalogue).
PUBLIC_ROWS = {"events": "is_active", "profiles": "published"}
REFUSED = "42501"  # insufficient_privilege: both "permission denied" and RLS violations


class BreachError(AssertionError):
    pass


@pytest.fixture(scope="module")
def world_db(pg: TestServer, template_db: str) -> Iterator[tuple[Database, World]]:
    name = pg.create_database(template=template_db)
    db = pg.database(name)
    world = build_world(db.sync_engine("admin"))
    yield db, world
    db.close()
    pg.drop_database(name)


@contextmanager
def as_role(db: Database, kind: str, user: str, org: uuid.UUID | str) -> Iterator[sa.Connection]:
    """One transaction as a runtime role with the given context; always rolled back."""
    with db.sync_engine(kind).connect() as conn:
        tx = conn.begin()
        conn.execute(
            sa.text(
                "select set_config('app.user_id', :u, true), set_config('app.org_id', :o, true)"
            ),
            {"u": user, "o": str(org)},
        )
        try:
            yield conn
        finally:
            tx.rollback()


def refused_or_noop(
    db: Database, kind: str, user: str, ctx_org: object, sql: str, **params: Any
) -> str:
    """Run one attack statement; return how it was stopped, raise Breach if it worked."""
    with as_role(db, kind, user, ctx_org) as conn:
        try:
            result = conn.execute(sa.text(sql), params)
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state == REFUSED:
                return "refused"
            raise BreachError(
                f"{kind}/{user}: {sql!r} failed for another reason ({state}): {exc.orig}"
            ) from exc
        if result.rowcount:
            raise BreachError(f"{kind}/{user}: {sql!r} affected {result.rowcount} row(s)")
        return "no rows"


def must_be_refused(
    db: Database, kind: str, user: str, ctx_org: object, sql: str, **params: Any
) -> None:
    with as_role(db, kind, user, ctx_org) as conn:
        with pytest.raises(DBAPIError) as info:
            conn.execute(sa.text(sql), params)
        state = getattr(info.value.orig, "sqlstate", None)
        if state != REFUSED:
            raise BreachError(
                f"{kind}/{user}: {sql!r} failed with {state}, not a security refusal: "
                f"{info.value.orig}"
            )


def attackers(world: World) -> list[tuple[str, str, uuid.UUID]]:
    a = world.a
    return [
        ("app", a.owner, a.org_id),
        ("app", a.expert, a.org_id),
        ("app", a.member, a.org_id),
        ("app", a.patient, a.patient_org_id),
        ("system", "system:job", a.org_id),
    ]


def updatable_column(db: Database, kind: str, table: str, fallback: str = "org_id") -> str:
    """A column the role may UPDATE (so the probe tests RLS, not just column privileges)."""
    role = db.settings.roles.app if kind == "app" else db.settings.roles.system
    with db.sync_engine("admin").connect() as conn:
        cols = (
            conn.execute(
                sa.text(
                    "select column_name from information_schema.column_privileges "
                    "where table_name = :t and grantee = :r and privilege_type = 'UPDATE' "
                    "and column_name not in ('id', 'org_id') order by column_name"
                ),
                {"t": table, "r": role},
            )
            .scalars()
            .all()
        )
    return cols[0] if cols else fallback


def forged_row(db: Database, table: str, victim: Tenant, attacker_user: str) -> dict[str, Any]:
    """A copy of one of the victim's rows with a new id, attributed to the attacker."""
    with db.sync_engine("admin").connect() as conn:
        row = dict(
            conn.execute(
                sa.text(f"select * from {table} where org_id = :o limit 1"), {"o": victim.org_id}
            )
            .mappings()
            .one()
        )
        identity = (
            conn.execute(
                sa.text(
                    "select attname from pg_attribute where attrelid = cast(:t as regclass) "
                    "and attidentity <> ''"
                ),
                {"t": table},
            )
            .scalars()
            .all()
        )
    for col in identity:
        row.pop(col)
    if isinstance(row.get("id"), uuid.UUID):
        row["id"] = uuid.uuid4()
    for col in ("workos_user_id", "expert_id", "expert_clerk_user_id"):
        if col in row and not attacker_user.startswith("system:"):
            row[col] = attacker_user
    return {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()}


def insert_sql(table: str, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    cols = list(row)
    params = {f"p{i}": row[c] for i, c in enumerate(cols)}
    names = ", ".join(f'"{c}"' for c in cols)
    values = ", ".join(f":p{i}" for i in range(len(cols)))
    return f"insert into {table} ({names}) values ({values})", params


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_cross_tenant_attacks_per_table(
    world_db: tuple[Database, World], table: str, attack_count: Any
) -> None:
    db, world = world_db
    b = world.b
    ran = 0
    for kind, user, org in attackers(world):
        # SELECT: nothing of org B except rows that are public by design.
        with as_role(db, kind, user, org) as conn:
            rows = (
                conn.execute(sa.text(f"select * from {table} where org_id = :b"), {"b": b.org_id})
                .mappings()
                .all()
            )
        public = PUBLIC_ROWS.get(table) if kind == "app" else None
        leaked = [r for r in rows if not (public and r[public])]
        assert not leaked, f"{kind}/{user} read {len(leaked)} of org B's {table} rows"
        ran += 1
        col = updatable_column(db, kind, table)
        refused_or_noop(
            db,
            kind,
            user,
            org,
            f'update {table} set "{col}" = "{col}" where org_id = :b',
            b=b.org_id,
        )
        refused_or_noop(db, kind, user, org, f"delete from {table} where org_id = :b", b=b.org_id)
        row = forged_row(db, table, b, user)
        sql, params = insert_sql(table, row)
        must_be_refused(db, kind, user, org, sql, **params)
        # Moving one's own rows into org B.
        refused_or_noop(
            db,
            kind,
            user,
            org,
            f"update {table} set org_id = :b where org_id = :a",
            b=b.org_id,
            a=org,
        )
        ran += 4
    attack_count(table, ran)


@pytest.mark.parametrize("table", GLOBAL_TABLES)
def test_global_tables_refuse_foreign_writes(
    world_db: tuple[Database, World], table: str, attack_count: Any
) -> None:
    db, world = world_db
    a, b = world.a, world.b
    ran = 0
    # Tables people may read rows of (their own); the rest are system-only operational tables.
    key = {
        "organizations": ("id", b.org_id),
        "users": ("workos_user_id", b.owner),
        "roles": ("workos_user_id", b.expert),
        "categories": ("id", None),
    }.get(table, ("true", None))
    for user in (a.owner, a.expert, a.member):
        first_column = next(iter(Base.metadata.tables[table].columns)).name
        col = updatable_column(db, "app", table, fallback=first_column)
        if table in ("organizations", "users", "roles", "categories"):
            col = updatable_column(db, "app", table, fallback="id")
        where = f"{key[0]} = :k" if key[1] is not None else "true"
        if table not in ("organizations", "users", "roles", "categories"):
            must_be_refused(db, "app", user, a.org_id, f"select count(*) from {table}")
            ran += 1
        elif table != "categories":
            with as_role(db, "app", user, a.org_id) as conn:
                seen = conn.execute(
                    sa.text(f"select count(*) from {table} where {where}"), {"k": key[1]}
                ).scalar_one()
            assert seen == 0, f"{user} read org B's {table} row"
            ran += 1
        refused_or_noop(
            db,
            "app",
            user,
            a.org_id,
            f'update {table} set "{col}" = "{col}" where {where}',
            k=key[1],
        )
        refused_or_noop(db, "app", user, a.org_id, f"delete from {table} where {where}", k=key[1])
        ran += 2
    attack_count(table, ran)


def test_anonymous_sees_only_public_rows(
    world_db: tuple[Database, World], attack_count: Any
) -> None:
    db, _ = world_db
    ran = 0
    for table in TENANT_TABLES:
        with as_role(db, "app", "", "") as conn:
            rows = conn.execute(sa.text(f"select * from {table}")).mappings().all()
        public = PUBLIC_ROWS.get(table)
        assert all(public and r[public] for r in rows), f"anonymous read private {table} rows"
        ran += 1
    attack_count("anonymous", ran)


def test_forged_or_unset_context_sees_nothing(
    world_db: tuple[Database, World], attack_count: Any
) -> None:
    db, world = world_db
    a, b = world.a, world.b
    ran = 0
    for table in ("meetings", "records", "audit_logs", "payment_transfers", "schedules"):
        # Switch the org mid-transaction to B while still being user A.
        with as_role(db, "app", a.owner, a.org_id) as conn:
            assert conn.execute(sa.text(f"select count(*) from {table}")).scalar_one() >= 0
            conn.execute(sa.text("select set_config('app.org_id', :b, true)"), {"b": str(b.org_id)})
            n = conn.execute(
                sa.text(f"select count(*) from {table} where org_id = :b"), {"b": b.org_id}
            ).scalar_one()
            assert n == 0, f"forged org id exposed {table}"
            conn.execute(sa.text("select set_config('app.org_id', '', true)"))
            assert conn.execute(sa.text(f"select count(*) from {table}")).scalar_one() == 0
            conn.execute(sa.text("reset app.user_id"))
            assert conn.execute(sa.text(f"select count(*) from {table}")).scalar_one() == 0
        ran += 3
    # A malformed org id fails the statement instead of matching anything.
    with as_role(db, "app", a.owner, "not-a-uuid") as conn, pytest.raises(DBAPIError) as info:
        conn.execute(sa.text("select count(*) from meetings"))
    assert isinstance(info.value.orig, psycopg.errors.InvalidTextRepresentation)
    ran += 1
    # Context set in one transaction does not survive into the next on the same connection.
    with db.sync_engine("app").connect() as conn:
        with conn.begin():
            conn.execute(
                sa.text(
                    "select set_config('app.user_id', :u, true), set_config('app.org_id', :o, true)"
                ),
                {"u": a.owner, "o": str(a.org_id)},
            )
            assert conn.execute(sa.text("select count(*) from meetings")).scalar_one() > 0
        with conn.begin():
            assert conn.execute(sa.text("select count(*) from meetings")).scalar_one() == 0
    ran += 1
    # A suspended member loses access at once.
    with db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "update user_org_memberships set status = 'suspended' where workos_user_id = :u"
            ),
            {"u": a.member},
        )
    try:
        with as_role(db, "app", a.member, a.org_id) as conn:
            assert conn.execute(sa.text("select count(*) from schedules")).scalar_one() == 0
    finally:
        with db.sync_engine("admin").begin() as conn:
            conn.execute(
                sa.text(
                    "update user_org_memberships set status = 'active' where workos_user_id = :u"
                ),
                {"u": a.member},
            )
    ran += 1
    attack_count("context", ran)


def test_audit_log_is_append_only(world_db: tuple[Database, World], attack_count: Any) -> None:
    db, world = world_db
    a = world.a
    ran = 0
    for kind, user in (("app", a.owner), ("system", "system:job")):
        for sql in (
            "update audit_logs set action = 'X'",
            "delete from audit_logs",
            "truncate audit_logs",
            "truncate audit_logs_default",
            "select * from audit_logs_default",
            "insert into audit_logs_default "
            "(id, org_id, workos_user_id, actor_type, action, resource_type) "
            f"values (gen_random_uuid(), '{a.org_id}', '{user}', 'user', 'A', 'r')",
        ):
            must_be_refused(db, kind, user, a.org_id, sql)
            ran += 1
    # Forged authorship: another actor, another org, a system actor claimed by a person.
    forged = [
        ("app", a.owner, {"actor": a.expert, "org": a.org_id, "type": "user"}),
        ("app", a.owner, {"actor": a.owner, "org": world.b.org_id, "type": "user"}),
        ("app", a.owner, {"actor": a.owner, "org": a.org_id, "type": "system"}),
        ("system", "system:job", {"actor": a.owner, "org": a.org_id, "type": "user"}),
        ("system", "system:job", {"actor": "system:job", "org": world.b.org_id, "type": "system"}),
    ]
    for kind, user, row in forged:
        must_be_refused(
            db,
            kind,
            user,
            a.org_id,
            "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, "
            "resource_type) values (gen_random_uuid(), :org, :actor, :type, 'A', 'r')",
            **row,
        )
        ran += 1
    # A superuser bypasses RLS, yet the triggers still refuse to change history.
    admin = db.sync_engine("admin")
    for statement in (
        "update audit_logs set action = 'X'",
        "delete from audit_logs",
        "truncate audit_logs",
        "truncate audit_logs_default",
    ):
        with admin.connect() as conn, conn.begin(), pytest.raises(DBAPIError, match="append-only"):
            conn.exec_driver_sql(statement)
        ran += 1
    # The owner role: FORCEd RLS hides every row from it, and TRUNCATE hits the trigger.
    owner = db.settings.roles.owner
    for statement in ("update audit_logs set action = 'X'", "delete from audit_logs"):
        with admin.connect() as conn, conn.begin():
            conn.exec_driver_sql(f'set local role "{owner}"')
            assert conn.exec_driver_sql(statement).rowcount == 0
        ran += 1
    with admin.connect() as conn, conn.begin(), pytest.raises(DBAPIError, match="append-only"):
        conn.exec_driver_sql(f'set local role "{owner}"')
        conn.exec_driver_sql("truncate audit_logs")
    ran += 1
    with admin.connect() as conn:
        remaining = conn.execute(sa.text("select count(*) from audit_logs")).scalar_one()
    assert remaining == 2, "audit rows changed"
    attack_count("audit", ran)


def test_no_privilege_escalation(world_db: tuple[Database, World], attack_count: Any) -> None:
    db, world = world_db
    a = world.a
    attempts = [
        (a.member, "update users set role = 'superadmin' where workos_user_id = :me"),
        (a.member, "update user_org_memberships set role = 'owner' where workos_user_id = :me"),
        (
            a.member,
            "insert into user_org_memberships (workos_user_id, org_id, role) "
            "values (:me, :org, 'owner')",
        ),
        (a.member, "insert into roles (workos_user_id, role) values (:me, 'superadmin')"),
        (a.member, "update expert_applications set status = 'approved' where workos_user_id = :me"),
        (a.member, "update expert_applications set reviewed_by = :me where workos_user_id = :me"),
        (
            a.member,
            "insert into expert_applications (org_id, workos_user_id, expertise, credentials, "
            "experience, motivation, status) values (:org, :me, 'x', 'x', 'x', 'x', 'approved')",
        ),
        (
            a.expert,
            "update meetings set stripe_payment_status = 'succeeded' where workos_user_id = :me",
        ),
        (
            a.expert,
            "insert into meetings (org_id, event_id, workos_user_id, guest_email, guest_name, "
            "start_time, end_time, timezone, stripe_payment_status) select org_id, id, :me, "
            "'x@y', 'x', now(), now() + interval '1 hour', 'UTC', 'succeeded' from events limit 1",
        ),
        (
            a.expert,
            "insert into payment_transfers (org_id, payment_intent_id, checkout_session_id, "
            "event_id, expert_connect_account_id, expert_clerk_user_id, amount, platform_fee, "
            "session_start_time, scheduled_transfer_time) values (:org, 'pi_x', 'cs', 'e', "
            "'acct', :me, 1, 1, now(), now())",
        ),
        (a.expert, "update transaction_commissions set commission_amount = 0"),
        (a.expert, "update annual_plan_eligibility set is_eligible = true"),
        (a.member, "insert into categories (name) values ('forged')"),
        (
            a.member,
            "insert into organizations (workos_org_id, slug, name, type) "
            "values ('org_x', 'x', 'x', 'clinic')",
        ),
    ]
    for user, sql in attempts:
        refused_or_noop(db, "app", user, a.org_id, sql, me=user, org=a.org_id)
    # A plain member is not an org admin: renaming the org changes nothing.
    assert (
        refused_or_noop(
            db,
            "app",
            a.member,
            a.org_id,
            "update organizations set name = 'pwned' where id = :org",
            org=a.org_id,
        )
        == "no rows"
    )
    attack_count("escalation", len(attempts) + 1)


def test_runtime_roles_are_unprivileged(world_db: tuple[Database, World]) -> None:
    db, _ = world_db
    roles = db.settings.roles
    with db.sync_engine("admin").connect() as conn:
        for role in roles.runtime:
            props = conn.execute(
                sa.text(
                    "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles "
                    "where rolname = :r"
                ),
                {"r": role},
            ).one()
            assert not any(props), f"{role} has elevated attributes {props}"
            owned = conn.execute(
                sa.text(
                    "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner "
                    "where r.rolname = :r"
                ),
                {"r": role},
            ).scalar_one()
            assert owned == 0, f"{role} owns {owned} relations"
            member_of_owner = conn.execute(
                sa.text("select pg_has_role(:r, :o, 'member')"), {"r": role, "o": roles.owner}
            ).scalar_one()
            assert not member_of_owner
        not_forced = (
            conn.execute(
                sa.text(
                    "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname = 'public' and c.relkind in ('r', 'p') and relname <> 'alembic_version' "
                    "and not (c.relrowsecurity and c.relforcerowsecurity)"
                )
            )
            .scalars()
            .all()
        )
        assert not_forced == [], f"tables without forced RLS: {not_forced}"


def test_audit_writer_role_can_only_append(
    world_db: tuple[Database, World], attack_count: Any
) -> None:
    """The group-commit writer batches many orgs; in exchange it may do nothing but INSERT."""
    db, world = world_db
    ran = 0
    statements = [f"select * from {t} limit 1" for t in (*TENANT_TABLES, *GLOBAL_TABLES)]
    statements += [
        "update audit_logs set action = 'X'",
        "delete from audit_logs",
        "truncate audit_logs",
        "insert into meetings (org_id) values (gen_random_uuid())",
        "select app.audit_purge_expired()",
        "select app.audit_drop_expired_partitions()",
        "insert into audit_logs_default (id, org_id, workos_user_id, actor_type, action, "
        "resource_type) values (gen_random_uuid(), gen_random_uuid(), 'u', 'user', 'A', 'r')",
        # a person cannot be passed off as a system actor or the other way round
        "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, resource_type) "
        f"values (gen_random_uuid(), '{world.a.org_id}', 'user_x', 'system', 'A', 'r')",
        "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, resource_type) "
        f"values (gen_random_uuid(), '{world.a.org_id}', 'system:x', 'user', 'A', 'r')",
    ]
    for sql in statements:
        must_be_refused(db, "writer", "", "", sql)
        ran += 1
    attack_count("writer", ran)
