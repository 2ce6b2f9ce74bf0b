"""The streams of the bulk scan (:mod:`carelog.audit.integrity.scan`): one range of the log
in sealing order, re-hashed and compared with the stored leaves, here or in a forked worker.

A worker is a forked process (a spawned one would spend longer importing than hashing) with
its own connection as the caller's role; it imports the caller's exported snapshot in a
REPEATABLE READ, READ ONLY transaction with the caller's ``app.*`` context, so it sees exactly
the rows the caller sees. It sends back only whether its range matched, how many events it
compared and the keys of events beyond the last sealed one.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import make_conninfo

from carelog.audit.integrity.rows import LineKey, RowEncoder, line_key, split_line

__all__ = ["Comparer", "Job", "Range", "conninfo_of", "plan_sql", "run_forked"]

BATCH = 8192  # digests compared at once
CHUNK = 512  # lines handed to the encoder at once

# Read in txid order from the (org_id, txid) index and sort each transaction's rows (an
# incremental sort): rows stream from the first one instead of after a sort of the whole log,
# so PostgreSQL produces while Python hashes. Parallel query would only compete with workers.
_PLAN_SETTINGS = (
    ("max_parallel_workers_per_gather", "0"),
    ("work_mem", "64MB"),
    ("enable_seqscan", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_sort", "off"),
)


def plan_sql(local_default: bool = False) -> list[str]:
    if local_default:
        return [f"SET LOCAL {name} TO DEFAULT" for name, _ in _PLAN_SETTINGS]
    return [f"SET LOCAL {name} = '{value}'" for name, value in _PLAN_SETTINGS]


@dataclass(frozen=True)
class Range:
    statement: bytes
    start: int
    stop: int
    last: bool


class Comparer:
    """Hashes one range's lines in order; compares them with ``expected[start:stop]``."""

    def __init__(self, expected: bytes, start: int, stop: int, last: bool) -> None:
        self.expected, self.start, self.stop, self.last = expected, start, stop, last
        self.position = start  # index of the next event among the re-hashed seals
        self.done = start * 32  # bytes of ``expected`` compared so far
        self.ok = True
        self.tail: list[LineKey] = []
        self.digests: list[bytes] = []
        self.encoder = RowEncoder()

    def feed(self, lines: Sequence[bytes]) -> None:
        if not self.ok:
            return
        room = self.stop - self.position
        if len(lines) > room:
            if not self.last:
                self.ok = False  # an event too many inside the range
                return
            self.tail += [line_key(split_line(line)) for line in lines[room:]]
            lines = lines[:room]
        if not lines:
            return
        self.position += len(lines)
        self.digests += self.encoder.leaves(lines)
        if len(self.digests) >= BATCH:
            self._compare()

    def _compare(self) -> None:
        end = self.done + len(self.digests) * 32
        self.ok = self.ok and b"".join(self.digests) == self.expected[self.done : end]
        self.done = end
        self.digests.clear()

    def result(self) -> tuple[bool, int, list[LineKey]]:
        if self.ok and self.digests:
            self._compare()
        complete = self.position == self.stop
        return self.ok and complete, self.position - self.start, self.tail


# --------------------------------------------------------------------------- workers
@dataclass(frozen=True)
class Job:
    conninfo: str
    snapshot: str
    user_id: str
    org_id: str
    range: Range


_SHARED: dict[str, bytes] = {}  # the expected leaves, inherited by forked workers


def _stream(job: Job, expected: bytes) -> tuple[bool, int, list[LineKey]]:
    r = job.range
    comparer = Comparer(expected, r.start, r.stop, r.last)
    with psycopg.connect(job.conninfo, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(job.snapshot)))
        conn.execute(
            "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)",
            (job.user_id, job.org_id),
        )
        for statement in plan_sql():
            conn.execute(statement)
        chunk: list[bytes] = []
        with conn.cursor() as cur, cur.copy(r.statement) as copy:
            for data in copy:
                if not comparer.ok:
                    continue  # drain: the reference pass takes over
                chunk.append(bytes(data))
                if len(chunk) == CHUNK:
                    comparer.feed(chunk)
                    chunk = []
        comparer.feed(chunk)
        conn.execute("ROLLBACK")
    return comparer.result()


def _worker(job: Job, pipe: Connection) -> None:
    gc.disable()  # never collect (and close) objects inherited from the parent
    try:
        result: Any = _stream(job, _SHARED["expected"])
    except BaseException as exc:
        result = f"{type(exc).__name__}: {exc}"
    pipe.send(result)
    pipe.close()


def conninfo_of(conn: AsyncConnection[Any]) -> str:
    info = conn.info
    password = info.password
    return make_conninfo(info.dsn, password=password) if password else info.dsn


async def _readable(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(pipe.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(pipe.fileno())


async def run_forked(
    jobs: list[Job], expected: bytes, meanwhile: Callable[[], object]
) -> list[tuple[bool, int, list[LineKey]]] | None:
    """Each job in its own process; ``None`` if any worker failed to run."""
    context = multiprocessing.get_context("fork")
    gc.collect()  # nothing inherited is left for a worker's collector to finalise
    _SHARED["expected"] = expected
    workers = []
    try:
        for job in jobs:
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(job, send), daemon=True)
            process.start()
            send.close()
            workers.append((process, receive))
    finally:
        _SHARED.clear()
    results: list[tuple[bool, int, list[LineKey]]] | None = []
    try:
        meanwhile()
        for _process, receive in workers:
            try:
                await _readable(receive)
                result = receive.recv()
            except EOFError:
                result = "the worker exited without a result"
            if results is not None and isinstance(result, tuple):
                results.append(result)
            else:
                results = None
    finally:
        for process, receive in workers:
            receive.close()
            process.join()  # it has sent its result (or died): exits at once
    return results
