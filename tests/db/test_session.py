"""Units of work: the tenant context is set in the transaction and never outlives it."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from carelog.core.errors import CarelogError
from carelog.db.engine import Database
from carelog.db.schema import Meeting
from carelog.db.session import Scopes
from dbtools import with_pool_size
from world import build_world


async def test_org_scope_sees_its_org_only(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    a = world.a
    async with scopes.org_scope(a.owner, a.org_id) as session:
        ctx = (
            await session.execute(
                sa.text(
                    "select current_setting('app.user_id'), current_setting('app.org_id'), current_user"
                )
            )
        ).one()
        assert ctx[0] == a.owner and ctx[1] == str(a.org_id)
        assert ctx[2] == fresh_db.settings.roles.app
        orgs = {m.org_id for m in (await session.execute(sa.select(Meeting.__table__))).all()}
        assert orgs == {a.org_id}


async def test_system_scope_runs_as_system_role(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    async with scopes.system_scope("system:test", world.b.org_id) as session:
        who = (await session.execute(sa.text("select current_user"))).scalar_one()
        orgs = {m.org_id for m in (await session.execute(sa.select(Meeting.__table__))).all()}
    assert who == fresh_db.settings.roles.system
    assert orgs == {world.b.org_id}


async def test_unit_of_work_rolls_back_on_error(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    a = world.a
    with pytest.raises(RuntimeError):
        async with scopes.org_scope(a.expert, a.org_id) as session:
            await session.execute(
                sa.text("update events set name = 'changed' where org_id = :o"), {"o": a.org_id}
            )
            raise RuntimeError("boom")
    with fresh_db.sync_engine("admin").connect() as conn:
        names = (
            conn.execute(sa.text("select name from events where org_id = :o"), {"o": a.org_id})
            .scalars()
            .all()
        )
    assert "changed" not in names


async def test_context_does_not_leak_to_the_next_unit(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        assert (await session.execute(sa.text("select count(*) from meetings"))).scalar_one() == 1
    async with scopes.public_scope() as session:
        assert (await session.execute(sa.text("select count(*) from meetings"))).scalar_one() == 0


@pytest.mark.parametrize(
    ("user", "org", "field"),
    [
        ("", uuid.uuid4(), "user_id"),
        ("user_x", "nope", "org_id"),
        ("system:x", uuid.uuid4(), "user_id"),
    ],
)
async def test_bad_scope_arguments_are_clear_errors(
    scopes: Scopes, user: str, org: object, field: str
) -> None:
    with pytest.raises(CarelogError) as info:
        async with scopes.org_scope(user, org):  # type: ignore[arg-type]
            pass
    assert info.value.field == field


async def test_system_actor_must_be_named(scopes: Scopes) -> None:
    with pytest.raises(CarelogError, match="system:<name>"):
        async with scopes.system_scope("stripe", uuid.uuid4()):
            pass


async def test_more_units_than_connections_wait_instead_of_opening_new_ones(
    fresh_db: Database,
) -> None:
    """Twelve concurrent units on a pool of three share its three server processes: a unit
    finding every connection in use waits for one (an overflow connection opened for one unit
    and closed at its end is a new server process with cold caches)."""
    import asyncio

    small = with_pool_size(fresh_db, 3)
    scopes = Scopes(small)
    world = build_world(fresh_db.sync_engine("admin"))
    a = world.a

    async def one() -> int:
        async with scopes.org_scope(a.owner, a.org_id) as unit:
            pid = int(await unit.scalar(sa.text("select pg_backend_pid()")))
            await asyncio.sleep(0.02)  # held long enough for the others to queue
            return pid

    try:
        pids = await asyncio.gather(*(one() for _ in range(12)))
        again = await asyncio.gather(*(one() for _ in range(12)))
    finally:
        await small.dispose()
    assert len(set(pids) | set(again)) == 3, (pids, again)


def test_the_pool_size_is_checked() -> None:
    from carelog.core.errors import ConfigurationError
    from carelog.core.settings import Settings

    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"CARELOG_DB_POOL_SIZE": "0"})
    assert caught.value.field == "CARELOG_DB_POOL_SIZE" and "1-200" in str(caught.value)
