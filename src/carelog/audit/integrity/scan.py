"""The bulk check of :func:`carelog.audit.integrity.verify.verify_org`, on one or more workers.

On an intact log the seals in ``seq`` order and the events in sealing order
``(txid, created_at, id)`` pair up one to one, so re-hashing reduces to: the ``i``-th event's
recomputed leaf equals the ``i``-th re-hashed seal's stored leaf (purged seals, and with
``since`` seals of older events, are left out on both sides), for every ``i``. That is checked
in bulk:

* one aggregate over ``audit_seals`` gives every stored leaf (one bytea), the seqs left out,
  and the count and seq range, which prove the seqs contiguous (:func:`stored_leaves`);
* the events are streamed through ``COPY … TO STDOUT`` (:func:`carelog.audit.integrity.rows.
  events_copy`), encoded by :class:`~carelog.audit.integrity.rows.RowEncoder`, hashed, and
  compared with the stored leaves a batch of digests at a time, at C speed.

``workers`` is how many streams do that at once. With one, the caller's own connection streams
the whole log. With more (a forked process each, so every core hashes), the log is cut in
sealing order at the events of evenly spaced seals; each worker opens its own connection as the
caller's role, imports the aggregate's exported snapshot in a REPEATABLE READ transaction with
the caller's ``app.*`` context (so it sees exactly the same rows) and checks its range.

Anything unexpected (a leaf that differs, an event too many or too few, a gap in the seqs)
makes :func:`scan` return ``None``; the caller then runs the reference pass
(:mod:`carelog.audit.integrity.diagnose`), which names the first bad event. A worker that
cannot run (say no second connection can be opened) makes the scan fall back to one worker.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql

from carelog.audit.integrity.rows import (
    LineKey,
    events_copy,
    utf8,
)
from carelog.audit.integrity.workers import (
    CHUNK,
    Comparer,
    Job,
    Range,
    conninfo_of,
    plan_sql,
    run_forked,
)

__all__ = [
    "MIN_LEAVES_PER_WORKER",
    "ScanResult",
    "Stored",
    "choose_workers",
    "parallel_available",
    "scan",
    "stored_leaves",
]

#: Below this many events per worker a fork and a connection cost more than they save.
MIN_LEAVES_PER_WORKER = 50_000
_TS = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

# One statement, one snapshot: workers that import it see exactly these seals.
_STORED = (
    "SELECT {snapshot}, current_setting('app.user_id', true), "
    "current_setting('app.org_id', true), count(*), min(seq), max(seq), "
    "string_agg(leaf_hash, ''::bytea ORDER BY seq), "
    "array_agg(seq ORDER BY seq) FILTER (WHERE purged OR event_created_at < %(since)s), "
    "count(*) FILTER (WHERE event_created_at < %(since)s), "
    "count(*) FILTER (WHERE purged AND event_created_at >= %(since)s) "
    "FROM audit_seals WHERE org_id = %(org)s"
)
_BOUNDARIES = (
    f"SELECT s.seq, e.id::text, {_TS.format('e.created_at')}, e.txid FROM audit_seals s "
    "JOIN audit_logs e ON e.org_id = s.org_id AND e.created_at = s.event_created_at "
    "AND e.id = s.event_id WHERE s.org_id = %(org)s AND s.seq = ANY(%(seqs)s)"
)


@dataclass
class Stored:
    """The stored side: every leaf in ``seq`` order, and which of them are re-hashed."""

    leaves: list[bytes]
    expected: bytes  # the re-hashed seals' leaves, concatenated, in seq order
    excluded: list[int]  # seqs not re-hashed (purged, or older than ``since``), ascending
    purged: int
    skipped: int  # seals of events older than ``since``
    snapshot: str | None = None
    user_id: str = ""
    context_org: str | None = None

    @property
    def n_expected(self) -> int:
        return len(self.expected) // 32

    def seq_of(self, index: int) -> int:
        """The seq of the ``index``-th re-hashed seal."""
        seq = index
        for gone in self.excluded:
            if gone > seq:
                break
            seq += 1
        return seq


@dataclass
class ScanResult:
    """Every re-hashed seal matched its event; ``tail`` are the events after the last one."""

    events_checked: int
    workers: int
    tail: list[LineKey] = field(default_factory=list)


async def stored_leaves(
    conn: AsyncConnection[Any], org_id: uuid.UUID, since: str | None, *, export: bool
) -> Stored | None:
    """The stored leaves, or ``None`` if the seqs are not ``0 … n-1`` (the reference pass
    names the gap). ``export`` also exports the snapshot for workers."""
    statement = _STORED.format(snapshot="pg_export_snapshot()" if export else "NULL::text")
    async with conn.cursor(binary=True) as cur:
        await cur.execute(statement, {"org": org_id, "since": since or "-infinity"})
        row = await cur.fetchone()
    assert row is not None  # an aggregate always has a row
    snapshot, user_id, context_org, count, lo, hi, raw, excluded, skipped, purged = row
    if count and (lo != 0 or hi != count - 1):
        return None
    blob = bytes(raw or b"")
    leaves = [blob[i : i + 32] for i in range(0, len(blob), 32)]
    gone = list(excluded or [])
    if gone:
        drop = set(gone)
        expected = b"".join(leaf for i, leaf in enumerate(leaves) if i not in drop)
    else:
        expected = blob
    return Stored(leaves, expected, gone, purged, skipped, snapshot, user_id or "", context_org)


def parallel_available() -> bool:
    """Two cores, ``fork`` (a spawned worker would spend longer importing than hashing), and
    no thread that could hold a lock at the fork but the idle asyncio executor's (so a web
    server running blocking work in a thread pool keeps to one worker)."""
    if (os.cpu_count() or 1) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return False
    main = threading.main_thread()
    return threading.current_thread() is main and all(
        t is main or t.name.startswith("asyncio_") for t in threading.enumerate()
    )


def choose_workers(requested: int | None, events: int) -> int:
    """``requested`` if the process may fork (else 1); ``None``: one per core while each gets
    at least :data:`MIN_LEAVES_PER_WORKER` events."""
    if requested is not None and requested <= 1:
        return 1
    if not parallel_available():
        return 1
    if requested is not None:
        return requested
    return max(1, min(os.cpu_count() or 1, events // MIN_LEAVES_PER_WORKER))


def _ranges(
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    since: str | None,
    cuts: list[tuple[int, LineKey]],
    total: int,
) -> list[Range]:
    where = None
    if since is not None:
        where = sql.SQL("e.created_at >= {}::timestamptz").format(sql.Literal(since))
    bounds: list[tuple[int, LineKey | None]] = [(0, None), *cuts]
    out = []
    for k, (start, key) in enumerate(bounds):
        last = k == len(bounds) - 1
        stop, before = (total, None) if last else bounds[k + 1]
        statement = events_copy(org_id, from_key=key, before=before, where=where)
        out.append(Range(statement.as_bytes(conn), start, stop, last))
    return out


async def _cuts(
    conn: AsyncConnection[Any], org_id: uuid.UUID, stored: Stored, workers: int
) -> list[tuple[int, LineKey]] | None:
    """(index among the re-hashed seals, event key) where each range after the first starts."""
    n = stored.n_expected
    indices = sorted({n * k // workers for k in range(1, workers)} - {0, n})
    if not indices:
        return []
    seqs = {stored.seq_of(i): i for i in indices}
    async with conn.cursor() as cur:
        await cur.execute(_BOUNDARIES, {"org": org_id, "seqs": list(seqs)})
        rows = await cur.fetchall()
    if len(rows) != len(seqs) or len({r[0] for r in rows}) != len(seqs):
        return None  # a boundary event is missing or duplicated: the reference pass names it
    found = {int(r[0]): (str(r[1]), str(r[2]), int(r[3])) for r in rows}
    return [(seqs[seq], found[seq]) for seq in sorted(seqs)]


async def _scan_here(
    conn: AsyncConnection[Any], expected: bytes, ranges: list[Range]
) -> tuple[bool, int, list[LineKey]]:
    """Every range on the caller's connection, one after the other."""
    ok, compared, tail = True, 0, []
    for statement in plan_sql():
        await conn.execute(statement)
    try:
        for r in ranges:
            comparer = Comparer(expected, r.start, r.stop, r.last)
            chunk: list[bytes] = []
            async with conn.cursor() as cur, cur.copy(r.statement) as copy:
                async for data in copy:
                    if not comparer.ok:
                        continue  # drain: the reference pass takes over
                    chunk.append(bytes(data))
                    if len(chunk) == CHUNK:
                        comparer.feed(chunk)
                        chunk = []
            comparer.feed(chunk)
            r_ok, r_n, r_tail = comparer.result()
            ok, compared = ok and r_ok, compared + r_n
            tail += r_tail
    finally:
        for statement in plan_sql(local_default=True):
            await conn.execute(statement)
    return ok, compared, tail


# --------------------------------------------------------------------------- the scan
async def scan(
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    stored: Stored,
    *,
    workers: int = 1,
    since: str | None = None,
    meanwhile: Callable[[], object] = lambda: None,
) -> ScanResult | None:
    """Re-hash every event against ``stored``; ``None`` if the reference pass must decide.

    ``meanwhile`` runs while forked workers hash (the caller checks roots then), or first.
    """
    if not utf8(conn):
        meanwhile()
        return None
    workers = max(1, min(workers, stored.n_expected or 1))
    if workers > 1 and (stored.snapshot is None or stored.context_org != str(org_id)):
        workers = 1  # no snapshot to share, or a context the workers could not reproduce
    cuts = await _cuts(conn, org_id, stored, workers)
    if cuts is None:
        meanwhile()
        return None
    ranges = _ranges(conn, org_id, since, cuts, stored.n_expected)
    results = None
    if len(ranges) > 1:
        assert stored.snapshot is not None
        conninfo = conninfo_of(conn)
        jobs = [Job(conninfo, stored.snapshot, stored.user_id, str(org_id), r) for r in ranges]
        results = await run_forked(jobs, stored.expected, meanwhile)
    if results is None:  # one worker, or the workers could not run: the caller's connection
        if len(ranges) == 1:
            meanwhile()
        ranges = _ranges(conn, org_id, since, [], stored.n_expected)
        results = [await _scan_here(conn, stored.expected, ranges)]
    if not all(ok for ok, _n, _tail in results):
        return None
    tail = [key for _ok, _n, keys in results for key in keys]
    return ScanResult(sum(n for _ok, n, _tail in results), len(ranges), tail)
