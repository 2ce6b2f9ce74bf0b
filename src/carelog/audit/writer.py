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

When a batch cannot be committed in time, the writer opens its circuit: batches go straight to
the spool while a probe waits for the database; then the spool is replayed in order and the
circuit closes. Storage errors never reach callers; they are counted and logged without event
contents. Only fail-closed events are refused (``AuditUnavailableError``), and only when neither
the database nor the spool could take them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from carelog.audit.errors import AuditUnavailableError
from carelog.audit.events import AuditEvent
from carelog.audit.spool import Spool

log = logging.getLogger("carelog.audit.writer")

COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("org_id", "uuid"),
    ("workos_user_id", "text"),
    ("actor_type", "text"),
    ("action", "text"),
    ("resource_type", "text"),
    ("resource_id", "text"),
    ("outcome", "text"),
    ("data_subject_id", "text"),
    ("old_values", "jsonb"),
    ("new_values", "jsonb"),
    ("metadata", "jsonb"),
    ("ip_address", "inet"),
    ("user_agent", "text"),
    ("request_id", "text"),
    ("created_at", "timestamptz"),
    ("source", "text"),
    ("schema_version", "int2"),
)
_NAMES = ", ".join(name for name, _ in COLUMNS)
INSERT_SQL = (
    f"INSERT INTO audit_logs ({_NAMES}) SELECT {_NAMES} FROM json_to_recordset(%s::json) AS r("
    + ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    + ") ON CONFLICT DO NOTHING"
)
_JSON_COLUMNS = ("old_values", "new_values", "metadata")
LANES = 2
SPLIT_AT = 32  # a lane leaves half of a larger backlog to an idle lane


def to_wire(event: AuditEvent) -> dict[str, Any]:
    """The event as plain strings: the spool's line format and the insert's parameters."""
    dumps = orjson.dumps
    old, new, meta = event.old_values, event.new_values, event.metadata
    return {
        "id": str(event.id),
        "org_id": str(event.org_id),
        "workos_user_id": event.workos_user_id,
        "actor_type": event.actor_type,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "outcome": event.outcome,
        "data_subject_id": event.data_subject_id,
        "old_values": None if old is None else dumps(old).decode(),
        "new_values": None if new is None else dumps(new).decode(),
        "metadata": None if meta is None else dumps(meta).decode(),
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "created_at": event.created_at.isoformat(),
        "source": event.source,
        "schema_version": str(event.schema_version),
    }


def columns_of(rows: Sequence[dict[str, Any]]) -> list[list[str | None]]:
    return [[row[name] for row in rows] for name, _ in COLUMNS]


def document(rows: Sequence[dict[str, Any]]) -> str:
    """The batch as one JSON array for ``json_to_recordset``; the JSON columns are embedded
    as JSON (they are already serialised in the wire format), everything else as strings."""
    fragment = orjson.Fragment
    out: list[dict[str, Any]] = []
    for row in rows:
        doc = dict(row)
        for key in _JSON_COLUMNS:
            value = doc.get(key)
            if value is not None:
                doc[key] = fragment(value)
        out.append(doc)
    return orjson.dumps(out).decode()


@dataclass
class WriterStats:
    """Counters for operators; no event content ever goes here or into logs."""

    submitted: int = 0
    committed: int = 0
    spooled: int = 0
    replayed: int = 0
    batches: int = 0
    db_failures: int = 0
    spool_failures: int = 0
    refused_fail_closed: int = 0
    held_in_memory: int = 0
    circuit_open: bool = False
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Pending:
    __slots__ = ("fail_closed", "future", "row")

    def __init__(self, row: dict[str, Any], fail_closed: bool, future: asyncio.Future[None]):
        self.row = row
        self.fail_closed = fail_closed
        self.future = future


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
    ) -> None:
        self.conninfo = conninfo
        self.spool = spool
        self.window = window
        self.max_batch = max_batch
        self.deadline = deadline
        self.probe_interval = probe_interval
        self.connect_timeout = connect_timeout
        self.lanes = max(1, lanes)
        self.stats = WriterStats()
        self._pending: deque[_Pending] = deque()
        self._arrived: asyncio.Event | None = None  # set when _pending becomes non-empty
        self._drained: asyncio.Event | None = None  # set when nothing is outstanding
        self._outstanding = 0  # submitted and not yet resolved
        self._storage_lock: asyncio.Lock | None = None  # spool appends and recovery
        self._tasks: list[asyncio.Task[None]] = []
        self._conns: list[psycopg.AsyncConnection[Any] | None] = [None] * self.lanes
        self._memory: list[dict[str, Any]] = []
        self._next_probe = 0.0
        self._stopping = False
        self._busy = 0  # lanes persisting a batch
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
        for lane in range(self.lanes):
            await self._close_conn(lane)
        self.spool.close()

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    # ------------------------------------------------------------------ producers
    async def submit(self, event: AuditEvent, *, fail_closed: bool = False) -> None:
        if self._arrived is None or self._drained is None:
            raise RuntimeError("AuditWriter.start() was not called")
        loop = asyncio.get_running_loop()
        pending = _Pending(to_wire(event), fail_closed, loop.create_future())
        self.stats.submitted += 1
        self._outstanding += 1
        self._drained.clear()
        self._pending.append(pending)
        if len(self._pending) == 1:
            self._arrived.set()
        await pending.future

    # ------------------------------------------------------------------ the drain lanes
    async def _run(self, lane: int) -> None:
        assert self._storage_lock is not None
        while not self._stopping:
            if self.stats.circuit_open and time.monotonic() >= self._next_probe:
                self._next_probe = time.monotonic() + self.probe_interval
                if await self._probe(lane):
                    async with self._storage_lock:  # no batch is spooled during a replay
                        if self.stats.circuit_open:
                            await self._recover(lane)
            batch = await self._collect()
            if not batch:
                continue
            self._busy += 1
            try:
                await self._persist(batch, lane)
            finally:
                self._busy -= 1
                self._outstanding -= len(batch)
                if self._outstanding == 0 and self._drained is not None:
                    self._drained.set()

    async def _collect(self) -> list[_Pending]:
        """The next batch: waits for a first event, then lets the producers that are already
        running add theirs (at most ``window``). When the other lane is idle and many events
        wait, it takes half, so one half is committed while the other is being built."""
        assert self._arrived is not None
        if not self._pending:
            if self._stopping:
                return []
            self._arrived.clear()
            timeout = self.probe_interval if self.stats.circuit_open else None
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return []
        if self.window > 0:
            loop = asyncio.get_running_loop()
            until = loop.time() + self.window
            seen = -1
            # Ready producers run at each yield; stop once a yield brought nothing new.
            while seen != len(self._pending) < self.max_batch and loop.time() < until:
                seen = len(self._pending)
                await asyncio.sleep(0)
        waiting = len(self._pending)
        take = min(waiting, self.max_batch)
        if self._busy < self.lanes - 1 and waiting >= 2 * SPLIT_AT:
            take = min(take, (waiting + 1) // 2)
        popleft = self._pending.popleft
        batch = [popleft() for _ in range(take)]
        if self._pending:
            self._arrived.set()  # the other lane may take the rest at once
        return batch

    async def _persist(self, batch: list[_Pending], lane: int) -> None:
        assert self._storage_lock is not None
        rows = [p.row for p in batch]
        self.stats.batches += 1
        if not self.stats.circuit_open and await self._try_insert(rows, lane):
            self._resolve(batch, None)
            return
        async with self._storage_lock:
            # recovery may have closed the circuit while this lane waited for the lock
            if not self.stats.circuit_open and await self._try_insert(rows, lane):
                self._resolve(batch, None)
                return
            await self._spool(batch, rows)

    async def _try_insert(self, rows: list[dict[str, Any]], lane: int) -> bool:
        try:
            await asyncio.wait_for(self._insert(rows, lane), timeout=self.deadline)
        except Exception as exc:  # any storage failure: fall back, never raise to callers
            self._open_circuit(exc)
            await self._close_conn(lane)
            return False
        self.stats.committed += len(rows)
        return True

    async def _spool(self, batch: list[_Pending], rows: list[dict[str, Any]]) -> None:
        try:
            await asyncio.to_thread(self.spool.append, rows)
        except OSError as exc:
            self.stats.spool_failures += 1
            self.stats.last_error = f"spool: {type(exc).__name__}"
            log.critical("audit spool failed", extra={"error": type(exc).__name__})
            refused = [p for p in batch if p.fail_closed]
            kept = [p for p in batch if not p.fail_closed]
            self._memory.extend(p.row for p in kept)
            self.stats.held_in_memory = len(self._memory)
            self.stats.refused_fail_closed += len(refused)
            self._resolve(kept, None)
            self._resolve(
                refused,
                AuditUnavailableError(
                    "the audit event could not be made durable; the read was refused",
                    hint="the database and the local spool are both unavailable",
                ),
            )
            return
        self.stats.spooled += len(rows)
        self._resolve(batch, None)

    @staticmethod
    def _resolve(batch: Sequence[_Pending], error: BaseException | None) -> None:
        for p in batch:
            if not p.future.done():
                if error is None:
                    p.future.set_result(None)
                else:
                    p.future.set_exception(error)

    def _open_circuit(self, exc: BaseException) -> None:
        self.stats.db_failures += 1
        self.stats.last_error = type(exc).__name__
        if not self.stats.circuit_open:
            log.error("audit database unavailable, spooling", extra={"error": type(exc).__name__})
        self.stats.circuit_open = True

    # ------------------------------------------------------------------ database
    async def _connection(self, lane: int = 0) -> psycopg.AsyncConnection[Any]:
        conn = self._conns[lane]
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self.conninfo, connect_timeout=max(1, int(self.connect_timeout))
            )
            self._conns[lane] = conn
        return conn

    async def _close_conn(self, lane: int = 0) -> None:
        conn, self._conns[lane] = self._conns[lane], None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=1)

    async def _insert(self, rows: Sequence[dict[str, Any]], lane: int = 0) -> None:
        conn = await self._connection(lane)
        async with conn.transaction():
            await conn.execute(INSERT_SQL, (document(rows),))

    async def _probe(self, lane: int = 0) -> bool:
        try:
            conn = await asyncio.wait_for(self._connection(lane), timeout=self.connect_timeout)
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=self.deadline * 4)
            await conn.rollback()
        except Exception:
            await self._close_conn(lane)
            return False
        return True

    async def _replay(self, rows: Sequence[dict[str, Any]], lane: int) -> None:
        # bounded like live batches: a database that answers probes but cannot insert (a held
        # lock) must not keep the storage lock, and so the callers being spooled, waiting
        await asyncio.wait_for(self._insert(rows, lane), timeout=max(self.deadline, 0.1))

    async def _recover(self, lane: int = 0) -> None:
        """Replay the spool in order, then close the circuit. Runs under the storage lock, so
        no batch is spooled meanwhile: order is kept and nothing is written twice (a replay cut
        short is simply replayed again: ON CONFLICT DO NOTHING)."""
        self.spool.rotate()
        try:
            if self._memory:
                await self._replay(self._memory, lane)
                self.stats.replayed += len(self._memory)
                self._memory.clear()
                self.stats.held_in_memory = 0
            for path in self.spool.pending():
                with self.spool.claim(path) as mine:
                    if not mine:
                        continue
                    chunk: list[dict[str, Any]] = []
                    for row in self.spool.read(path):
                        chunk.append({**row, "source": "spool"})
                        if len(chunk) >= self.max_batch:
                            await self._replay(chunk, lane)
                            self.stats.replayed += len(chunk)
                            chunk = []
                    if chunk:
                        await self._replay(chunk, lane)
                        self.stats.replayed += len(chunk)
                    self.spool.remove(path)
        except Exception as exc:
            self._open_circuit(exc)
            await self._close_conn(lane)
            return
        if self.stats.circuit_open:
            log.warning("audit database back, spool replayed", extra=self.stats.as_dict())
        self.stats.circuit_open = False
