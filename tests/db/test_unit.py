"""The unit of work on psycopg: statements, rows and errors as services rely on them.

Everything runs through the real runtime roles on a real PostgreSQL: the app role for
statements and RLS, the admin connection only to cut a backend off.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from carelog.db.engine import Database
from carelog.db.schema import Organization
from carelog.db.session import Scopes
from carelog.db.unit import observing_statements
from dbtools import with_pool_size
from world import build_world

_ORGS = Organization.__table__


async def test_rows_have_names_positions_and_repeated_columns(
    fresh_db: Database, scopes: Scopes
) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    async with scopes.org_scope(world.a.owner, world.a.org_id) as unit:
        row = (
            await unit.execute(
                sa.text("select set_config('x.a', '1', true), set_config('x.b', '2', true), 3 as n")
            )
        ).one()
        assert tuple(row) == ("1", "2", 3) and row.set_config == "1" and row.n == 3
        assert row._mapping["n"] == 3
        assert await unit.scalar(sa.text("select 41 + 1")) == 42
        assert (await unit.execute(sa.text("select 1 where false"))).first() is None
        with pytest.raises(sa.exc.NoResultFound):
            (await unit.execute(sa.text("select 1 where false"))).one()
        with pytest.raises(sa.exc.MultipleResultsFound):
            (await unit.execute(sa.text("select * from generate_series(1, 2)"))).one_or_none()
        mapped = (await unit.execute(sa.text("select 1 as a, 2 as b"))).mappings().one()
        assert mapped == {"a": 1, "b": 2}
        typed = sa.text("select '\\x01ff'::bytea as b, 7::int2 as n, '2026-01-02'::date as d")
        text_row = (await unit.execute(typed)).one()
        binary_row = (await unit.execute(typed, binary=True)).one()
        assert tuple(text_row) == tuple(binary_row) and bytes(binary_row.b) == b"\x01\xff"


async def test_core_statements_of_one_shape_keep_their_own_values(
    fresh_db: Database, scopes: Scopes
) -> None:
    """Compiled once per shape: the cached SQL must never carry the first call's values."""
    world = build_world(fresh_db.sync_engine("admin"))
    async with scopes.system_scope("system:test", world.a.org_id) as unit:
        for org in (world.a.org_id, uuid.uuid4(), world.a.org_id):
            stmt = sa.select(_ORGS.c.id).where(_ORGS.c.id == org)
            found = (await unit.execute(stmt)).scalars().all()
            assert found == ([org] if org == world.a.org_id else [])
        several = sa.select(_ORGS.c.id).where(_ORGS.c.id.in_([world.a.org_id, uuid.uuid4()]))
        assert (await unit.execute(several)).scalars().all() == [world.a.org_id]  # IN (...)


async def test_typed_values_and_errors_come_back_as_sqlalchemy_knows_them(
    fresh_db: Database, scopes: Scopes
) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    scratch = sa.Table(
        "unit_scratch",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("doc", JSONB),
    )
    async with scopes.org_scope(world.a.owner, world.a.org_id) as unit:
        await unit.execute(
            sa.text("create temp table unit_scratch (id int primary key, doc jsonb)")
        )
        await unit.execute(sa.insert(scratch).values(id=1, doc={"a": [1, "é"]}))  # JSONB bound
        assert await unit.scalar(sa.select(scratch.c.doc)) == {"a": [1, "é"]}
        with pytest.raises(sa.exc.IntegrityError):
            async with unit.begin_nested():
                await unit.execute(sa.insert(scratch).values(id=1, doc=None))
        # the savepoint took the error; the unit goes on
        rows = [{"id": 2, "doc": {"b": 2}}, {"id": 3, "doc": None}]
        result = await unit.execute(sa.insert(scratch), rows)
        assert result.rowcount == 2
        assert await unit.scalar(sa.text("select count(*) from unit_scratch")) == 3
        batches = [len(b) async for b in unit.stream(sa.select(scratch.c.id), batch_size=2)]
        assert batches == [2, 1]
        with pytest.raises(sa.exc.DataError):
            await unit.execute(sa.text("select 1 / 0"))


async def test_statements_can_be_observed(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    seen: list[str] = []
    with observing_statements(seen.append):
        async with scopes.org_scope(world.a.owner, world.a.org_id) as unit:
            await unit.execute(sa.text("select 1"))
    assert len(seen) == 2 and "set_config" in seen[0] and seen[1] == "select 1"


async def test_a_backend_cut_off_fails_its_unit_and_the_next_unit_works(
    fresh_db: Database, scopes: Scopes
) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    with pytest.raises(sa.exc.OperationalError) as info:
        async with scopes.org_scope(world.a.owner, world.a.org_id) as unit:
            pid = await unit.scalar(sa.text("select pg_backend_pid()"))
            with fresh_db.sync_engine("admin").begin() as admin:
                admin.execute(sa.text("select pg_terminate_backend(:p)"), {"p": pid})
            await unit.execute(sa.text("select 1"))
    assert info.value.connection_invalidated
    async with scopes.org_scope(world.a.owner, world.a.org_id) as unit:
        assert await unit.scalar(sa.text("select 1")) == 1


async def test_json_documents_keep_every_number_exact(fresh_db: Database, scopes: Scopes) -> None:
    """Parsed by orjson where that is exact, by the standard library where it is not (an
    integer wider than 64 bits would become a float)."""
    world = build_world(fresh_db.sync_engine("admin"))
    doc = '{"wide": 123456789012345678901234567890, "neg": -9223372036854775809, "x": [1.5, "é"]}'
    async with scopes.org_scope(world.a.owner, world.a.org_id) as unit:
        value = await unit.scalar(sa.text("select cast(:d as jsonb)"), {"d": doc})
        assert value == {
            "wide": 123456789012345678901234567890,
            "neg": -9223372036854775809,
            "x": [1.5, "é"],
        }
        assert isinstance(value["wide"], int)
        small = await unit.scalar(
            sa.text("select cast(:d as jsonb)"), {"d": '{"n": 12, "f": 0.25}'}
        )
        assert small == {"n": 12, "f": 0.25}


async def test_a_unit_cancelled_mid_statement_hands_its_connection_back_clean(
    fresh_db: Database, scopes: Scopes
) -> None:
    """A request cancelled while its statement runs (the client hung up): the connection goes
    back to the pool with no transaction and no tenant context left on it."""
    world = build_world(fresh_db.sync_engine("admin"))
    a, b = world.a, world.b

    async def slow() -> None:
        async with scopes.org_scope(a.owner, a.org_id) as unit:
            await unit.execute(sa.text("select pg_sleep(30)"))

    for _ in range(3):
        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def context_seen() -> tuple[str, str]:
        async with scopes.org_scope(b.owner, b.org_id) as unit:
            row = (
                await unit.execute(
                    sa.text(
                        "select current_setting('app.user_id', true),"
                        " current_setting('app.org_id', true)"
                    )
                )
            ).one()
            await asyncio.sleep(0.05)  # hold it, so the 25 units need every pooled connection
            return row[0], row[1]

    seen = await asyncio.wait_for(asyncio.gather(*(context_seen() for _ in range(25))), 30)
    assert set(seen) == {(b.owner, str(b.org_id))}


async def test_deferred_statements_keep_the_units_guarantees(fresh_db: Database) -> None:
    """A deferred statement (an in-transaction audit event) runs before the unit's next
    statement or with its COMMIT, and commits or rolls back with the unit: with an exception,
    inside a savepoint that is rolled back, and when it fails itself (then nothing of the unit
    commits). One pooled connection, so the scratch table lives across the units."""
    small = with_pool_size(fresh_db, 1)
    scopes = Scopes(small)
    a = build_world(fresh_db.sync_engine("admin")).a
    insert = sa.text("insert into unit_deferred values (:n)")
    everything = sa.text("select coalesce(array_agg(n order by n), '{}') from unit_deferred")
    try:
        async with scopes.org_scope(a.owner, a.org_id) as unit:
            await unit.execute(sa.text("create temp table unit_deferred (n int primary key)"))
        async with scopes.org_scope(a.owner, a.org_id) as unit:
            unit.defer(insert, {"n": 1})
            assert await unit.scalar(everything) == [1]  # run before the next statement
            unit.defer(insert, {"n": 2})
            with pytest.raises(RuntimeError, match="deferred"):
                _ = unit.driver  # the driver would overtake it
        async with scopes.org_scope(a.owner, a.org_id) as unit:
            assert await unit.scalar(everything) == [1, 2]  # 2 went with the COMMIT

        with pytest.raises(ZeroDivisionError):
            async with scopes.org_scope(a.owner, a.org_id) as unit:
                unit.defer(insert, {"n": 3})
                _ = 1 / 0
        async with scopes.org_scope(a.owner, a.org_id) as unit:
            with pytest.raises(ZeroDivisionError):
                async with unit.begin_nested():
                    unit.defer(insert, {"n": 4})
                    _ = 1 / 0
            unit.defer(insert, {"n": 5})
        with pytest.raises(sa.exc.IntegrityError):
            async with scopes.org_scope(a.owner, a.org_id) as unit:
                await unit.execute(insert, {"n": 6})
                unit.defer(insert, {"n": 1})  # a duplicate: the COMMIT after it never runs
        async with scopes.org_scope(a.owner, a.org_id) as unit:
            assert await unit.scalar(everything) == [1, 2, 5]
    finally:
        await small.dispose()


async def test_values_bound_into_the_first_statement_stay_values(fresh_db: Database) -> None:
    """``BEGIN`` and the context travel as one simple query with the values bound by psycopg's
    client-side cursor: a user id made of quotes, backslashes and statement separators is
    the context's value, nothing more (and the statement after it still runs in the unit)."""
    scopes = Scopes(fresh_db)
    hostile = "o'brien\\'; drop table audit_logs; -- \\\\ $$ \" e'\\x00'"
    org = uuid.uuid4()
    async with scopes.org_scope(hostile, org) as unit:
        seen = await unit.scalar(sa.text("select current_setting('app.user_id')"))
        in_tx = await unit.scalar(sa.text("select now() = statement_timestamp()"))
    assert seen == hostile
    assert in_tx is False  # the second statement ran inside the transaction BEGIN opened
    async with scopes.system_scope("system:test", org) as unit:
        assert await unit.scalar(sa.text("select to_regclass('audit_logs') is not null"))
