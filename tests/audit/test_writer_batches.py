"""A backlog grows the writer's batches only as far as they still commit within the deadline.

A batch that takes longer to insert than the deadline would be spooled although the database
is healthy (and every caller of the batch would wait the whole deadline). Here each inserted
row costs PostgreSQL at least 3 ms (a row trigger that sleeps), so the backlog of 256 waiting
producers, split between the two lanes, needs about 0.4 s per batch against a 0.25 s
deadline: the writer must size its batches from the insert cost it measures, and spool
nothing.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from audit_env import AuditEnv

from carelog.audit import audit_context, log_audit_event

SLOW_ROWS = """
CREATE FUNCTION public.bench_slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.003); RETURN NEW; END $$;
CREATE TRIGGER bench_slow_row BEFORE INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION public.bench_slow_row();
"""


async def test_a_backlog_on_a_slow_database_is_committed_not_spooled(
    audit_env: AuditEnv,
) -> None:
    with audit_env.db.sync_engine("admin").begin() as conn:
        conn.execute(sa.text(SLOW_ROWS))
    a = audit_env.world.a
    writer = audit_env.service.writer

    async def one(name: str) -> None:
        with audit_context(actor_id=a.owner, org_id=a.org_id):
            await log_audit_event("PROFILE_VIEWED", "profile", name)

    # a lone event teaches nothing (its time is mostly the round trip); a batch of a group or
    # more teaches the writer what a row costs
    await one("alone")
    assert writer.batch_limit() == writer.max_batch
    await asyncio.gather(*(one(f"warm-{i}") for i in range(40)))
    limit = writer.batch_limit()
    assert limit < 64, limit  # 0.4 x 0.25 s / 3 ms: about 33 events

    async def producer(p: int) -> None:
        with audit_context(actor_id=a.owner, org_id=a.org_id):
            for i in range(8):
                await log_audit_event("PROFILE_VIEWED", "profile", f"backlog-{p}-{i}")

    await asyncio.gather(*(producer(p) for p in range(256)))
    assert writer.stats.spooled == 0, writer.stats
    assert not writer.stats.circuit_open
    assert audit_env.count("resource_id like 'backlog-%'") == 256 * 8
