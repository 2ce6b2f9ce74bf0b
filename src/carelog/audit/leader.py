"""One leader across processes: the worker holding a PostgreSQL advisory lock seals and streams.

``carelog up --workers N`` runs N processes on one database. Sealing (Merkle leaves, signed
checkpoints) and streaming must run once, not N times: each worker keeps a dedicated
connection and tries ``pg_try_advisory_lock`` on it every ``interval``; the one that gets it runs
its duties for as long as that connection lives. A session-level advisory lock is released by
PostgreSQL the moment its session ends, so a leader killed with ``kill -9`` (or cut off by a
network failure) is replaced by another worker within about ``interval``. Between the loss of
the connection and the leader noticing it (one keep-alive, at most ``interval``) two sealers may
briefly overlap; the sealer's own per-organization state row lock keeps that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from carelog.audit.recovery import describe_db_error

log = logging.getLogger("carelog.audit.leader")

# pg_try_advisory_lock(bigint): a fixed key, distinct from the stream runner's per-destination
# keys (which are derived from a hash of the destination's name).
LEADER_LOCK_KEY = 0x6361_7265_6C6F_6701  # "carelog" + 1


@dataclass
class Leadership:
    """Whether this process currently leads (``/health`` reports it)."""

    is_leader: bool = False
    changes: int = 0


Duties = Callable[[], AbstractAsyncContextManager[Any]]


async def _lead(conninfo: str, duties: Duties, state: Leadership, interval: float) -> None:
    last_problem: str | None = None
    while True:
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, connect_timeout=max(1, int(interval))
            )
            while True:
                row = await (
                    await conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,))
                ).fetchone()
                if row and row[0]:
                    break
                await asyncio.sleep(interval)
            state.is_leader, state.changes = True, state.changes + 1
            last_problem = None
            log.info("this process leads the audit duties (sealing, streaming)")
            async with duties():
                while True:  # keep-alive: the lock lives exactly as long as this session
                    await asyncio.sleep(interval)
                    await conn.execute("SELECT 1")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            problem = describe_db_error(exc)
            if problem != last_problem:
                log.warning("audit leader lock unavailable or lost: %s", problem)
                last_problem = problem
        finally:
            if state.is_leader:
                log.warning("this process no longer leads the audit duties")
            state.is_leader = False
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=1)
        await asyncio.sleep(interval)


@asynccontextmanager
async def leader_duties(
    conninfo: str, duties: Duties, *, interval: float = 2.0
) -> AsyncIterator[Leadership]:
    """Compete for leadership for the life of the block; run ``duties`` while leading."""
    state = Leadership()
    task = asyncio.create_task(_lead(conninfo, duties, state, interval), name="carelog-leader")
    try:
        yield state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
