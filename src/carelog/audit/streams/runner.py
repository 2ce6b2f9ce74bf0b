"""The stream runner: one loop per destination, behind the writer, with its own cursor.

A step of a destination's loop is one transaction of the system role:

1. take the destination's advisory lock (``pg_try_advisory_xact_lock``; a second runner for the
   same destination skips the step instead of delivering the batch twice),
2. read the cursor and the next batch of final events after it (:mod:`.reader`),
3. deliver the batch, which returns only once the destination confirmed it,
4. move the cursor past the batch and commit.

The cursor therefore moves only after a confirmed delivery: a crash between 3 and 4 re-sends the
batch (at least once; receivers deduplicate by event id) and never loses one. Nothing here
touches the writer: the runner reads committed rows through its own connections, takes no row
lock and holds no transaction id while it delivers, so a slow or unreachable destination costs
the primary log nothing and does not hold back the transaction horizon. A failed step is
recorded (``error_count``, ``last_error``) in a transaction of its own and retried after an
exponential, jittered delay; when the destination is back the stream catches up from its cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carelog.audit.streams.base import Position, Sink, backoff_delay
from carelog.audit.streams.config import Destination
from carelog.audit.streams.nats_sink import NatsSink
from carelog.audit.streams.reader import START, Lag, measure_lag, read_batch
from carelog.audit.streams.webhook_sink import WEBHOOK_BATCH, WebhookSink
from carelog.db.engine import Database

log = logging.getLogger(__name__)
STREAM_ACTOR = "system:audit-stream"
NATS_BATCH = 500
_CONTEXT = sa.text(
    "select set_config('app.user_id', :actor, true), set_config('app.org_id', '', true)"
)
_REGISTER = sa.text(
    "insert into audit_stream_cursors (destination, kind) values (:d, :k) "
    "on conflict (destination) do nothing"
)
_CURSOR = sa.text(
    "select position_txid, position_created_at, position_id from audit_stream_cursors "
    "where destination = :d"
)
_ADVANCE = sa.text(
    "update audit_stream_cursors set position_txid = :txid, position_created_at = :created_at, "
    "position_id = :id, delivered_count = delivered_count + :n, last_delivered_at = now() "
    "where destination = :d"
)
_SET_LAG = sa.text(
    "update audit_stream_cursors set lag_events = :events, lag_seconds = :seconds "
    "where destination = :d"
)
_ERROR = sa.text(
    "update audit_stream_cursors set error_count = error_count + 1, last_error = :e, "
    "last_error_at = now() where destination = :d"
)


def lock_key(destination: str) -> int:
    """The destination's advisory lock key (a signed 64-bit integer)."""
    digest = hashlib.sha256(b"carelog.audit_stream:" + destination.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def make_sink(destination: Destination) -> Sink:
    if destination.kind == "nats":
        return NatsSink(destination)
    return WebhookSink(destination)


@dataclass(frozen=True)
class StreamStatus:
    """One destination as ``carelog audit stream status`` shows it (lag measured now)."""

    destination: str
    kind: str
    delivered: int
    lag_events: int
    lag_seconds: float
    error_count: int
    last_error: str | None
    last_error_at: datetime | None
    last_delivered_at: datetime | None
    position_txid: int


class StreamRunner:
    """Streams the audit log to each destination in background tasks until stopped."""

    def __init__(
        self,
        database: Database,
        destinations: Sequence[Destination],
        *,
        sinks: Mapping[str, Sink] | None = None,
        batch_size: int | None = None,
        idle_interval: float = 0.5,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        lag_interval: float = 5.0,
    ) -> None:
        self.destinations = {d.name: d for d in destinations}
        self.sinks: dict[str, Sink] = dict(sinks or {})
        for d in destinations:
            self.sinks.setdefault(d.name, make_sink(d))
        self._engine: AsyncEngine = database.async_engine("system")
        self._batch = batch_size
        self._idle = idle_interval
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._lag_interval = lag_interval
        self._lag_measured: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def batch_size(self, name: str) -> int:
        if self._batch is not None:
            return self._batch
        return NATS_BATCH if self.destinations[name].kind == "nats" else WEBHOOK_BATCH

    async def _begin(self, conn: AsyncConnection) -> None:
        await conn.execute(_CONTEXT, {"actor": STREAM_ACTOR})

    async def register(self) -> None:
        """Create the cursors of new destinations (at the start of the trail)."""
        async with self._engine.begin() as conn:
            await self._begin(conn)
            for d in self.destinations.values():
                await conn.execute(_REGISTER, {"d": d.name, "k": d.kind})

    async def step(self, name: str) -> int:
        """Deliver the next batch of ``name``; return how many events were delivered."""
        sink = self.sinks[name]
        async with self._engine.begin() as conn:
            await self._begin(conn)
            locked = (
                await conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(lock_key(name))))
            ).scalar_one()
            if not locked:
                return 0
            row = (await conn.execute(_CURSOR, {"d": name})).one()
            after = Position(int(row[0]), row[1], row[2])
            events = await read_batch(conn, after, self.batch_size(name))
            if events:
                await sink.deliver(events)
                last = events[-1].position
                await conn.execute(
                    _ADVANCE,
                    {
                        "d": name,
                        "txid": last.txid,
                        "created_at": last.created_at,
                        "id": last.id,
                        "n": len(events),
                    },
                )
                after = last
            if not events or len(events) < self.batch_size(name) or self._lag_due(name):
                await self._store_lag(conn, name, await measure_lag(conn, after))
        return len(events)

    def _lag_due(self, name: str) -> bool:
        return time.monotonic() - self._lag_measured.get(name, 0.0) >= self._lag_interval

    async def _store_lag(self, conn: AsyncConnection, name: str, lag: Lag) -> None:
        self._lag_measured[name] = time.monotonic()
        await conn.execute(_SET_LAG, {"d": name, "events": lag.events, "seconds": lag.seconds})

    async def record_error(self, name: str, error: BaseException) -> None:
        message = (str(error) or type(error).__name__)[:2000]
        log.warning("audit stream %s: %s", name, message)
        try:
            async with self._engine.begin() as conn:
                await self._begin(conn)
                await conn.execute(_ERROR, {"d": name, "e": message})
                row = (await conn.execute(_CURSOR, {"d": name})).one()
                lag = await measure_lag(conn, Position(int(row[0]), row[1], row[2]))
                await self._store_lag(conn, name, lag)
        except Exception as exc:  # the database itself is away: the loop retries anyway
            log.warning("audit stream %s: cannot record the error: %s", name, exc)

    async def run_destination(self, name: str) -> None:
        """The loop of one destination (until cancelled)."""
        failures = 0
        while True:
            try:
                delivered = await self.step(name)
            except Exception as exc:
                failures += 1
                await self.record_error(name, exc)
                await asyncio.sleep(backoff_delay(failures, self._retry_base, self._retry_cap))
                continue
            failures = 0
            if delivered < self.batch_size(name):
                await asyncio.sleep(self._idle)

    async def start(self) -> None:
        """Register the destinations and start one background task per destination."""
        await self.register()
        for name in self.destinations:
            if name not in self._tasks or self._tasks[name].done():
                self._tasks[name] = asyncio.create_task(
                    self.run_destination(name), name=f"audit-stream {name}"
                )

    async def stop(self) -> None:
        """Cancel the loops (an unconfirmed batch is sent again next time) and close sinks."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sink in self.sinks.values():
            await sink.close()

    async def run_forever(self) -> None:
        """Start, then wait until cancelled (Ctrl-C in ``carelog audit stream run``)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


async def stream_status(
    database: Database, destinations: Sequence[Destination] = ()
) -> list[StreamStatus]:
    """Every known destination (and configured ones not started yet), lag measured now."""
    engine = database.async_engine("system")
    out: list[StreamStatus] = []
    async with engine.begin() as conn:
        await conn.execute(_CONTEXT, {"actor": STREAM_ACTOR})
        rows = (
            await conn.execute(
                sa.text(
                    "select destination, kind, position_txid, position_created_at, position_id, "
                    "delivered_count, error_count, last_error, last_error_at, last_delivered_at "
                    "from audit_stream_cursors order by destination"
                )
            )
        ).all()
        known = {r.destination for r in rows}
        for r in rows:
            lag = await measure_lag(
                conn, Position(int(r.position_txid), r.position_created_at, r.position_id)
            )
            out.append(
                StreamStatus(
                    destination=r.destination,
                    kind=r.kind,
                    delivered=int(r.delivered_count),
                    lag_events=lag.events,
                    lag_seconds=lag.seconds,
                    error_count=int(r.error_count),
                    last_error=r.last_error,
                    last_error_at=r.last_error_at,
                    last_delivered_at=r.last_delivered_at,
                    position_txid=int(r.position_txid),
                )
            )
        for d in destinations:
            if d.name not in known:
                lag = await measure_lag(conn, START)
                out.append(
                    StreamStatus(d.name, d.kind, 0, lag.events, lag.seconds, 0, None, None, None, 0)
                )
    return out
