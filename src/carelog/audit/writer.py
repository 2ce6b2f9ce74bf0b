"""The group-commit writer: many concurrent callers, few transactions, no lost event.

Callers hand an event to :meth:`AuditWriter.submit` and get control back once it is durable:
committed in PostgreSQL, or fsync'd to the local spool when the database is down or slower than
the deadline. One task drains the queue: it waits at most ``window`` for more events to join a
batch (group commit), then inserts the whole batch with one multi-row ``INSERT ... SELECT FROM
unnest(...)`` (COPY is refused on a table whose RLS applies to the writing role, and the writer
role is deliberately RLS-bound) with ``ON CONFLICT DO NOTHING``, so a replayed event is stored
once.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
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
INSERT_SQL = (
    "INSERT INTO audit_logs ("
    + ", ".join(name for name, _ in COLUMNS)
    + ") SELECT * FROM unnest("
    + ", ".join(f"%s::text[]::{kind}[]" for _, kind in COLUMNS)
    + ") ON CONFLICT DO NOTHING"
)


def to_wire(event: AuditEvent) -> dict[str, Any]:
    """The event as plain strings: the spool's line format and the insert's parameters."""
    row = event.as_row()
    for key in ("old_values", "new_values", "metadata"):
        row[key] = None if row[key] is None else orjson.dumps(row[key]).decode()
    row["id"] = str(row["id"])
    row["org_id"] = str(row["org_id"])
    row["created_at"] = event.created_at.isoformat()
    row["schema_version"] = str(row["schema_version"])
    return row


def columns_of(rows: Sequence[dict[str, Any]]) -> list[list[str | None]]:
    return [[row[name] for row in rows] for name, _ in COLUMNS]


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


@dataclass
class _Pending:
    row: dict[str, Any]
    fail_closed: bool
    future: asyncio.Future[None] = field(repr=False)


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
    ) -> None:
        self.conninfo = conninfo
        self.spool = spool
        self.window = window
        self.max_batch = max_batch
        self.deadline = deadline
        self.probe_interval = probe_interval
        self.connect_timeout = connect_timeout
        self.stats = WriterStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._memory: list[dict[str, Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._task is not None:
            return
        self.loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        if self.spool.pending():
            self.stats.circuit_open = True  # replay leftovers before anything new
        self._task = asyncio.create_task(self._run(), name="carelog-audit-writer")

    async def stop(self) -> None:
        """Drain what was submitted, then close. Nothing acknowledged is left behind."""
        if self._task is None or self._queue is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._close_conn()
        self.spool.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ producers
    async def submit(self, event: AuditEvent, *, fail_closed: bool = False) -> None:
        if self._queue is None:
            raise RuntimeError("AuditWriter.start() was not called")
        loop = asyncio.get_running_loop()
        pending = _Pending(to_wire(event), fail_closed, loop.create_future())
        self.stats.submitted += 1
        self._queue.put_nowait(pending)
        await pending.future

    # ------------------------------------------------------------------ the drain task
    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            if self.stats.circuit_open and await self._probe():
                await self._recover()
            try:
                first = await asyncio.wait_for(
                    self._queue.get(),
                    timeout=self.probe_interval if self.stats.circuit_open else None,
                )
            except TimeoutError:
                continue
            batch = [first]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                await self._persist(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _persist(self, batch: list[_Pending]) -> None:
        rows = [p.row for p in batch]
        self.stats.batches += 1
        if not self.stats.circuit_open:
            try:
                await asyncio.wait_for(self._insert(rows), timeout=self.deadline)
            except Exception as exc:  # any storage failure: fall back, never raise to callers
                self._open_circuit(exc)
                await self._close_conn()
            else:
                self.stats.committed += len(rows)
                self._resolve(batch, None)
                return
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
    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.conninfo, connect_timeout=max(1, int(self.connect_timeout))
            )
        return self._conn

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=1)

    async def _insert(self, rows: Sequence[dict[str, Any]]) -> None:
        conn = await self._connection()
        async with conn.transaction():
            await conn.execute(INSERT_SQL, columns_of(rows))

    async def _probe(self) -> bool:
        try:
            conn = await asyncio.wait_for(self._connection(), timeout=self.connect_timeout)
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=self.deadline * 4)
            await conn.rollback()
        except Exception:
            await self._close_conn()
            return False
        return True

    async def _recover(self) -> None:
        """Replay the spool in order, then close the circuit. Runs in the drain task, so no
        new batch is persisted meanwhile: order is kept and nothing is written twice."""
        self.spool.rotate()
        try:
            if self._memory:
                await self._insert(self._memory)
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
                            await self._insert(chunk)
                            self.stats.replayed += len(chunk)
                            chunk = []
                    if chunk:
                        await self._insert(chunk)
                        self.stats.replayed += len(chunk)
                    self.spool.remove(path)
        except Exception as exc:
            self._open_circuit(exc)
            await self._close_conn()
            return
        if self.stats.circuit_open:
            log.warning("audit database back, spool replayed", extra=self.stats.as_dict())
        self.stats.circuit_open = False
