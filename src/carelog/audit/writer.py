"""The group-commit writer: many concurrent callers, few transactions, no lost event.

Callers hand an event to :meth:`AuditWriter.submit` and get control back once it is durable:
committed in PostgreSQL, or fsync'd to the local spool when the database is down or slower than
the deadline. Two lanes drain the pending events, each on its own connection: a lane waits at
most ``window`` for more events to join a batch (group commit), then inserts the whole batch
with one ``INSERT ... SELECT FROM json_to_recordset(...)`` (one orjson document: far cheaper to
build and to parse than one array per column; COPY is refused on a table whose RLS applies to
the writing role, and the writer role is deliberately RLS-bound) with ``ON CONFLICT DO
NOTHING``, so a replayed event is stored once. While one lane waits for its commit, the other
gathers the next batch, so building events and storing them overlap.

Per event, the hot path does as little Python as possible: the event is serialised once, by
orjson, straight from the dataclass (:func:`wire_of`); that one JSON object is both an element of
the insert's document (``b"[" + b",".join(...) + b"]"``) and the body of its spool line.
Producers join a *group* (one shared future per group, not one per event); a lane takes whole
groups. Each insert is a single statement on an autocommit connection, i.e. one round trip:
``execute`` returns only after PostgreSQL's ReadyForQuery, which follows the commit (and, with
``synchronous_commit`` on, the WAL flush), so acknowledging then is acknowledging after commit.

When a batch cannot be committed in time, the writer opens its circuit: batches go straight to
the spool while a probe waits for the database; then the spool is replayed in order
(:mod:`carelog.audit.recovery`: a line the database refuses is quarantined, not retried forever)
and the circuit closes. An event is acknowledged only once it is committed or fsync'd: when
neither is possible every caller of the batch gets ``AuditUnavailableError`` (the web layer
answers 503), nothing is held in memory and called a success. Storage errors are counted and
logged with their cause (errno, SQLSTATE), once per change of state, never with event contents.

Several processes may share one spool directory (``carelog up --workers N``): each appends to a
file of its own, and every ``orphan_interval`` a writer with a closed circuit looks for files no
live process holds (a worker killed with ``kill -9``) and replays them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import psycopg

from carelog.audit.batching import Group, GroupFuture, WriterStats, health_of
from carelog.audit.errors import AuditUnavailableError
from carelog.audit.events import AuditEvent
from carelog.audit.lanes import LaneConnections
from carelog.audit.recovery import describe_db_error, replay_spool
from carelog.audit.spool import Spool, describe_os_error
from carelog.audit.wire import COLUMNS, INSERT_SQL, document, document_of, wire_of

# The row format lives in carelog.audit.wire; COLUMNS and the encoders stay importable from here,
# where the first release defined them.
__all__ = [
    "COLUMNS",
    "INSERT_SQL",
    "AuditWriter",
    "WriterStats",
    "document",
    "document_of",
    "wire_of",
]

log = logging.getLogger("carelog.audit.writer")

LANES = 2
SPLIT_AT = 32  # a lane leaves half of a larger backlog to an idle lane
GROUP_SIZE = 32  # producers sharing one future; a lane takes whole groups
REPLAY_CHUNK = 250  # spool lines per replayed insert
#: A batch is sized to commit within this share of the deadline, at the insert cost per event
#: measured on recent batches: a backlog grows batches only as far as they still fit, so a
#: large batch is never the reason the deadline passes (which would spool a healthy
#: database's events). The rest of the deadline is headroom for a busy event loop.
DEADLINE_SHARE = 0.4


class AuditWriter:
    """One per process. ``start()`` inside the event loop that will call ``submit``."""

    def __init__(
        self,
        conninfo: str,
        spool: Spool,
        *,
        window: float = 0.002,
        max_batch: int = 2000,
        deadline: float = 0.25,
        probe_interval: float = 0.5,
        connect_timeout: float = 2.0,
        lanes: int = LANES,
        orphan_interval: float = 5.0,
    ) -> None:
        self.conninfo = conninfo
        self.spool = spool
        self.window = window
        self.max_batch = max_batch
        self.deadline = deadline
        self.probe_interval = probe_interval
        self.connect_timeout = connect_timeout
        self.lanes = max(1, lanes)
        self.orphan_interval = orphan_interval
        self.stats = WriterStats()
        self._groups: deque[Group] = deque()  # waiting to be taken by a lane
        self._open: Group | None = None  # the last group, still accepting events
        self._group_size = max(1, min(GROUP_SIZE, max_batch))
        self._waiting = 0  # events in self._groups
        self._arrived: asyncio.Event | None = None  # set when _groups becomes non-empty
        self._drained: asyncio.Event | None = None  # set when nothing is outstanding
        self._outstanding = 0  # submitted and not yet resolved
        self._storage_lock: asyncio.Lock | None = None  # spool appends and recovery
        self._tasks: list[asyncio.Task[None]] = []
        self._db = LaneConnections(conninfo, self.lanes, connect_timeout)
        self._next_probe = 0.0
        self._next_orphan_scan = 0.0
        self._stopping = False
        self._busy = 0  # lanes persisting a batch
        self._seconds_per_event = 0.0  # recent inserts' cost (moving average), 0: not measured
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._tasks:
            return
        self.loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._storage_lock = asyncio.Lock()
        if self.spool.pending():
            self.stats.circuit_open = True  # replay leftovers before anything new
        self._tasks = [
            asyncio.create_task(self._run(lane), name=f"carelog-audit-writer-{lane}")
            for lane in range(self.lanes)
        ]

    async def stop(self) -> None:
        """Drain what was submitted, then close. Nothing acknowledged is left behind."""
        if not self._tasks or self._drained is None:
            return
        await self._drained.wait()
        # The flag ends a lane even if a cancellation is lost (asyncio.wait_for in Python 3.11
        # can swallow one that races with completion, e.g. in a probe's connect).
        self._stopping = True
        if self._arrived is not None:
            self._arrived.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._stopping = False
        await self._db.close_all()
        self.spool.close()

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def health(self) -> dict[str, Any]:
        """What ``/health`` reports about the writer (see :func:`health_of`)."""
        return health_of(self.stats, self.spool.quarantine.count())

    # ------------------------------------------------------------------ producers
    async def submit(self, event: AuditEvent, *, fail_closed: bool = False) -> None:
        if self._arrived is None or self._drained is None or self.loop is None:
            raise RuntimeError("AuditWriter.start() was not called")
        wire = wire_of(event)
        group = self._open
        if group is None or len(group.wires) >= self._group_size:
            group = self._open = Group(GroupFuture(loop=self.loop))
            self._groups.append(group)
            if len(self._groups) == 1:
                self._arrived.set()
        if fail_closed:
            group.closed.append(len(group.wires))
        group.wires.append(wire)
        self._waiting += 1
        self.stats.submitted += 1
        if not self._outstanding:
            self._drained.clear()
        self._outstanding += 1
        refused = await group.future
        if refused:
            raise AuditUnavailableError(
                "the audit event could not be made durable, so the action was refused",
                hint="the database and the local audit spool are both unavailable; retry later",
            )

    # ------------------------------------------------------------------ the drain lanes
    async def _run(self, lane: int) -> None:
        assert self._storage_lock is not None
        while not self._stopping:
            self._scan_for_orphans()
            if self.stats.circuit_open and time.monotonic() >= self._next_probe:
                self._next_probe = time.monotonic() + self.probe_interval
                if await self._probe(lane):
                    async with self._storage_lock:  # no batch is spooled during a replay
                        if self.stats.circuit_open:
                            await self._recover(lane)
            batch = await self._collect()
            if not batch:
                continue
            wires = batch[0].wires if len(batch) == 1 else [w for g in batch for w in g.wires]
            self._busy += 1
            try:
                await self._persist(batch, wires, lane)
            finally:
                self._busy -= 1
                self._outstanding -= len(wires)
                if self._outstanding == 0 and self._drained is not None:
                    self._drained.set()

    async def _collect(self) -> list[Group]:
        """The next batch: waits for a first event, then lets the producers that are already
        running add theirs (at most ``window``). When the other lane is idle and many events
        wait, it takes half, so one half is committed while the other is being built. Groups
        are taken whole; a group taken is closed to new events."""
        assert self._arrived is not None
        if not self._groups:
            if self._stopping:
                return []
            self._arrived.clear()
            try:
                if self.stats.circuit_open:
                    async with asyncio.timeout(self.probe_interval):
                        await self._arrived.wait()
                else:
                    await self._arrived.wait()
            except TimeoutError:
                return []
            if not self._groups:
                return []
        if self.window > 0:
            loop = asyncio.get_running_loop()
            until = loop.time() + self.window
            seen = -1
            # Ready producers run at each yield; stop once a yield brought nothing new.
            while seen != self._waiting < self.max_batch and loop.time() < until:
                seen = self._waiting
                await asyncio.sleep(0)
        waiting = self._waiting
        take = min(waiting, self.batch_limit())
        if self._busy < self.lanes - 1 and waiting >= 2 * SPLIT_AT:
            take = min(take, (waiting + 1) // 2)
        groups = self._groups
        batch: list[Group] = []
        taken = 0
        while groups:
            size = len(groups[0].wires)
            if batch and (taken >= take or taken + size > take):
                break
            group = groups.popleft()
            if group is self._open:
                self._open = None
            batch.append(group)
            taken += size
        self._waiting -= taken
        if groups:
            self._arrived.set()  # the other lane may take the rest at once
        return batch

    def _scan_for_orphans(self) -> None:  # replay mode when another process left spool files
        now = time.monotonic()
        if self.stats.circuit_open or now < self._next_orphan_scan:
            return
        self._next_orphan_scan = now + self.orphan_interval
        if any(self.spool.orphaned(path) for path in self.spool.pending()):
            log.warning("audit spool files left by another process found, replaying them")
            self.stats.circuit_open = True
            self._next_probe = 0.0

    async def _persist(self, batch: list[Group], wires: list[bytes], lane: int) -> None:
        assert self._storage_lock is not None
        self.stats.batches += 1
        if not self.stats.circuit_open and await self._try_insert(wires, lane):
            self._resolve(batch, False)
            return
        async with self._storage_lock:
            # recovery may have closed the circuit while this lane waited for the lock
            if not self.stats.circuit_open and await self._try_insert(wires, lane):
                self._resolve(batch, False)
                return
            await self._spool(batch, wires)

    def batch_limit(self) -> int:
        """The most events one insert may carry: ``max_batch``, and no more than commit within
        :data:`DEADLINE_SHARE` of the deadline at the measured cost (never below one group)."""
        if self._seconds_per_event <= 0:
            return self.max_batch
        fits = int(DEADLINE_SHARE * self.deadline / self._seconds_per_event)
        return max(self._group_size, min(self.max_batch, fits))

    def _measured(self, events: int, seconds: float) -> None:
        # Only batches of at least a group teach the cost: a lone event's time is mostly the
        # round trip and the event loop's lag, which would make every batch look expensive.
        if events < self._group_size:
            return
        cost = seconds / events
        previous = self._seconds_per_event
        self._seconds_per_event = cost if previous <= 0 else 0.7 * previous + 0.3 * cost

    async def _try_insert(self, wires: list[bytes], lane: int) -> bool:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.deadline):
                await self._execute(document_of(wires), lane)
        except Exception as exc:  # any storage failure: fall back, never raise to callers
            self._open_circuit(exc)
            await self._close_conn(lane)
            return False
        self._measured(len(wires), time.monotonic() - started)
        self.stats.committed += len(wires)
        return True

    async def _spool(self, batch: list[Group], wires: list[bytes]) -> None:
        try:
            await asyncio.to_thread(self.spool.append_encoded, wires)
        except OSError as exc:
            self.stats.spool_failures += 1
            self.stats.last_error = f"spool: {describe_os_error(exc)}"
            if not self.stats.spool_failing:
                log.critical(
                    "audit spool append failed in %s: %s; refusing audited actions until the "
                    "database or the spool is back",
                    self.spool.directory,
                    describe_os_error(exc),
                )
            self.stats.spool_failing = True
            self.stats.refused += len(wires)
            self.stats.refused_fail_closed += sum(len(group.closed) for group in batch)
            self._resolve(batch, True)
            return
        if self.stats.spool_failing:
            log.warning("audit spool writable again in %s", self.spool.directory)
        self.stats.spool_failing = False
        self.stats.spooled += len(wires)
        self._resolve(batch, False)

    @staticmethod  # wake the batch's producers; refused: its events were stored nowhere
    def _resolve(batch: Sequence[Group], refused: bool) -> None:
        for group in batch:
            if not group.future.done():
                group.future.set_result(refused)

    def _open_circuit(self, exc: BaseException) -> None:
        self.stats.db_failures += 1
        self.stats.last_error = describe_db_error(exc)
        if not self.stats.circuit_open:
            log.error("audit database unavailable, spooling: %s", self.stats.last_error)
        self.stats.circuit_open = True

    # ------------------------------------------------------------------ database
    async def _connection(self, lane: int = 0) -> psycopg.AsyncConnection[Any]:
        return await self._db.get(lane)

    async def _close_conn(self, lane: int = 0) -> None:
        await self._db.close(lane)

    async def _execute(self, doc: str, lane: int = 0) -> None:
        """Insert one document. A single statement in autocommit mode is its own transaction;
        ``execute`` returns after ReadyForQuery, i.e. after the commit."""
        conn = await self._connection(lane)
        await conn.execute(INSERT_SQL, (doc,), prepare=True)

    async def _probe(self, lane: int = 0) -> bool:
        try:
            conn = await asyncio.wait_for(self._connection(lane), timeout=self.connect_timeout)
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=self.deadline * 4)
        except Exception:
            await self._close_conn(lane)
            return False
        return True

    async def _replay(self, doc: str, lane: int) -> None:
        # bounded like live batches: a database that answers probes but cannot insert (a held
        # lock) must not keep the storage lock (and the callers being spooled) waiting
        await asyncio.wait_for(self._execute(doc, lane), timeout=max(self.deadline, 0.1))

    async def _recover(self, lane: int = 0) -> None:
        """Replay the spool in order, then close the circuit. Runs under the storage lock, so
        no batch is spooled meanwhile: order is kept and nothing is written twice (a replay cut
        short is simply replayed again: ON CONFLICT DO NOTHING)."""
        self.spool.rotate()

        async def execute(rows: list[dict[str, Any]]) -> None:
            await self._replay(document(rows), lane)

        try:
            chunk = min(self.max_batch, REPLAY_CHUNK)  # each must commit within the deadline
            await replay_spool(self.spool, execute, chunk, self.stats)
        except Exception as exc:
            self._open_circuit(exc)
            await self._close_conn(lane)
            return
        if self.stats.circuit_open:
            log.warning(
                "audit database back, spool replayed (%d events so far, %d lines quarantined)",
                self.stats.replayed,
                self.spool.quarantine.count(),
            )
        self.stats.circuit_open = False
