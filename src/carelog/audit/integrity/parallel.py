"""The two-worker bulk fast path of :func:`carelog.audit.integrity.verify.verify_org`.

Same check as :mod:`carelog.audit.integrity.fastpath` (on an intact log the ``i``-th event in
sealing order ``(txid, created_at, id)`` hashes to the ``i``-th non-purged seal's leaf), with
the work split over two PostgreSQL backends and two worker processes, so both cores work:

* one statement on the caller's connection exports its snapshot and aggregates the stored
  leaves (one statement, one snapshot: the workers see exactly those seals);
* the log is cut in sealing order at the event of the middle seal: on an intact log the
  events before it pair with the non-purged seals before it, so the second half starts at a
  known index of the stored leaves;
* each worker (a forked process) opens its own connection as the caller's role, imports the
  snapshot in a REPEATABLE READ transaction with the caller's ``app.*`` context, streams its
  half through ``COPY … TO STDOUT`` (plain columns: PostgreSQL only sorts and prints, the
  JSON is put together here), hashes, and compares batches of digests with the stored leaves.

A worker reports only whether its half matched, how many events it compared, and the keys of
events beyond the sealed ones (pending, checked by the caller like the single fast path does).
Anything unexpected (a mismatch, a count that does not add up) makes :func:`parallel_pass`
return ``None``; the caller then runs the reference pass, which names the first bad event. A
worker that fails (say no second connection can be opened) makes it return ``False``: the
caller then uses the single-connection fast path (which falls back the same way).

A text column takes the quick route (``"`` + its bytes + ``"``) only when it needs no JSON
escaping: no ``"``, no control character and no backslash in the COPY line's text part (COPY
escapes backslashes and ``\\b \\f \\n \\r \\t \\v``, so every data backslash shows). Any other
line is decoded in full and serialised by :func:`carelog.audit.integrity.rows.row_canonical_bytes`,
the reference serialisation. ``tests/audit/integrity/test_parallel.py`` checks both routes give
the reference bytes.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from multiprocessing.connection import Connection
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import make_conninfo

from carelog.audit.integrity.canonical import CANONICAL_VERSION, VERSION_KEY
from carelog.audit.integrity.rows import (
    _TIMESTAMP_SQL,
    EVENT_FIELDS,
    _canonical_json,
    _ip_value,
    row_canonical_bytes,
)

__all__ = [
    "MIN_LEAVES",
    "ParallelResult",
    "RawCanonicaliser",
    "events_copy",
    "parallel_available",
    "parallel_pass",
    "reference_bytes",
    "split_line",
]

#: Below this many seals the single-connection fast path is as quick (no fork, no connect).
MIN_LEAVES = 100_000
BATCH = 8192
_CACHE_LIMIT = 65_536
_WORKERS = 2
_BOUNDARY_TRIES = 64

# The COPY columns: inet and the three jsonb values, the text columns in key order, a bit
# mask of the nullable text columns that are NULL, then txid. NULL is written as '' (never a
# backslash): unambiguous for inet and jsonb (never empty), and told apart from an empty
# string by ``nulls`` for the text columns that may be NULL.
_TAIL_COLUMNS = ("ip_address", "metadata", "new_values", "old_values")
_TEXT_COLUMNS = (
    "action",
    "actor_type",
    "created_at",
    "data_subject_id",
    "id",
    "org_id",
    "outcome",
    "request_id",
    "resource_id",
    "resource_type",
    "schema_version",
    "source",
    "user_agent",
    "workos_user_id",
)
_NULLABLE = ("data_subject_id", "request_id", "resource_id", "user_agent")
_COLUMNS = (*_TAIL_COLUMNS, *_TEXT_COLUMNS, "nulls", "txid")
assert sorted((*_TEXT_COLUMNS, *_TAIL_COLUMNS)) == sorted(EVENT_FIELDS)
assert list(_TEXT_COLUMNS) == sorted(_TEXT_COLUMNS)
_AT = {name: i for i, name in enumerate(_COLUMNS)}
_QUOTED = frozenset(_TEXT_COLUMNS) - {"schema_version"}


def _column_sql(name: str) -> str:
    if name == "created_at":
        return _TIMESTAMP_SQL.format("e.created_at")
    if name == "nulls":
        return " + ".join(f'{1 << i} * (e."{c}" IS NULL)::int' for i, c in enumerate(_NULLABLE))
    return f'e."{name}"'


_SELECT = ", ".join(_column_sql(name) for name in _COLUMNS)
_ORDER = " ORDER BY e.txid, e.created_at, e.id"
_KEY = "(e.txid, e.created_at, e.id)"


def events_copy(
    org_id: uuid.UUID | str, *, before: bool | None = None, key: tuple[Any, ...] = ()
) -> sql.Composed:
    """The events COPY in sealing order: all of them, or those before/from ``key``."""
    parts: list[sql.Composable] = [
        sql.SQL(f"COPY (SELECT {_SELECT} FROM audit_logs e WHERE e.org_id = "),
        sql.Literal(str(org_id)),
    ]
    if before is not None:
        txid, created_at, event_id = key
        parts += [
            sql.SQL(f" AND {_KEY} {'<' if before else '>='} (("),
            sql.Literal(int(txid)),
            sql.SQL(")::bigint, ("),
            sql.Literal(str(created_at)),
            sql.SQL(")::timestamptz, ("),
            sql.Literal(str(event_id)),
            sql.SQL(")::uuid)"),
        ]
    parts.append(sql.SQL(_ORDER + ") TO STDOUT (FORMAT text, NULL '')"))
    return sql.Composed(parts)


# --------------------------------------------------------------------------- canonical bytes
# A line takes the quick route only without backslashes (COPY writes every data backslash,
# and \b \f \n \r \t \v, with one) and control characters (beyond its 19 tabs and newline),
# and without quotes in the text columns: then every text column is written "<its bytes>"
# and every jsonb text is plain JSON.
_DELETE = b"\\" + bytes(range(0x20))
_SEPARATORS = len(_COLUMNS)
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_ESCAPES = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}
assert VERSION_KEY == "v"
assert "user_agent" < VERSION_KEY < "workos_user_id"


def _template(nulls: int) -> bytes:
    """The canonical document with %s for each value, NULLs of the nullable columns inlined."""
    members = []
    for name in sorted((*_TEXT_COLUMNS, *_TAIL_COLUMNS, VERSION_KEY)):
        if name == VERSION_KEY:
            value = str(CANONICAL_VERSION)
        elif name in _NULLABLE and nulls >> _NULLABLE.index(name) & 1:
            value = "null%s"  # the column is '' (NULL) in the COPY line
        elif name in _QUOTED:
            value = '"%s"'
        else:
            value = "%s"
        members.append(f'"{name}":{value}')
    return ("{" + ",".join(members) + "}").encode()


_TEMPLATES = {str(nulls).encode(): _template(nulls) for nulls in range(1 << len(_NULLABLE))}


def _copy_value(text: bytes) -> str:
    """One COPY text field as the string it stands for."""
    if b"\\" in text:
        text = _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)
    return text.decode()


def split_line(line: bytes) -> list[bytes]:
    """A COPY line of :func:`events_copy` as its fields (the last keeps its newline)."""
    return line.split(b"\t")


def tail_key(parts: list[bytes]) -> tuple[str, str, int]:
    """(id, created_at, txid) of a split COPY line."""
    return parts[_AT["id"]].decode(), parts[_AT["created_at"]].decode(), int(parts[-1])


class RawCanonicaliser:
    """COPY lines of :func:`events_copy` -> canonical event bytes (jsonb, inet memoised)."""

    def __init__(self) -> None:
        self.json: dict[bytes, bytes] = {b"": b"null"}
        self.ip: dict[bytes, bytes] = {b"": b"null"}

    def _json(self, text: bytes) -> bytes:
        if len(self.json) > _CACHE_LIMIT:
            self.json = {b"": b"null"}
        value = self.json[text] = _canonical_json(text.decode())
        return value

    def _ip(self, text: bytes) -> bytes:
        if len(self.ip) > _CACHE_LIMIT:
            self.ip = {b"": b"null"}
        ip = text.decode()
        value = self.ip[text] = orjson.dumps(_ip_value(ip)) if ":" in ip else b'"' + text + b'"'
        return value

    def canonical(self, parts: list[bytes], line: bytes) -> bytes:
        """The canonical bytes of a COPY line split by :func:`split_line`."""
        ip, meta, new, old = parts[0], parts[1], parts[2], parts[3]
        if (
            len(line) - len(line.translate(None, _DELETE)) != _SEPARATORS
            or line.find(b'"', len(ip) + len(meta) + len(new) + len(old) + 4) >= 0
        ):
            return reference_bytes(parts)
        jc = self.json
        (_ip, _meta, _new, _old, action, actor, created, subject, event_id, org, outcome,
         request, resource, rtype, version, source, agent, user, nulls, _txid) = parts  # fmt: skip
        template = _TEMPLATES.get(nulls)
        if template is None:
            return reference_bytes(parts)
        return template % (
            action,
            actor,
            created,
            subject,
            event_id,
            self.ip.get(ip) or self._ip(ip),
            jc.get(meta) or self._json(meta),
            jc.get(new) or self._json(new),
            jc.get(old) or self._json(old),
            org,
            outcome,
            request,
            resource,
            rtype,
            version,
            source,
            agent,
            user,
        )


def reference_bytes(parts: list[bytes]) -> bytes:
    """A COPY line's canonical bytes the slow, exact way (the reference serialisation)."""
    nulls = int(parts[_AT["nulls"]])
    doc: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        text = parts[_AT[name]]
        null = name in _NULLABLE and nulls >> _NULLABLE.index(name) & 1
        if null or (name in _TAIL_COLUMNS and not text):
            doc[name] = None
        else:
            doc[name] = _copy_value(text)
    row: list[Any] = [doc[name] for name in EVENT_FIELDS]
    version = doc["schema_version"]
    row[EVENT_FIELDS.index("schema_version")] = None if version is None else int(version)
    return row_canonical_bytes(row)


# --------------------------------------------------------------------------- workers
@dataclass
class ParallelResult:
    """What the two workers established; ``tail`` are events after the last sealed one."""

    leaves: list[bytes]
    purged: int
    events_checked: int
    tail: list[tuple[str, str, int]] = field(default_factory=list)  # (id, created_at, txid)


@dataclass(frozen=True)
class _Job:
    conninfo: str
    snapshot: str
    user_id: str
    org_id: uuid.UUID
    statement: bytes
    start: int  # index of this half's first event among the non-purged seals


def _stream(job: _Job, expected: bytes) -> tuple[bool, int, list[tuple[str, str, int]]]:
    """One half: (matched, events compared, tail keys). Runs in a worker process."""
    n_expected = len(expected) // 32
    canon = RawCanonicaliser()
    canonical = canon.canonical
    base = sha256(b"\x00")
    digests: list[bytes] = []
    push = digests.append
    position = job.start  # index of the next event among the non-purged seals
    done = job.start * 32  # bytes of ``expected`` compared so far
    ok = True
    tail: list[tuple[str, str, int]] = []
    with psycopg.connect(job.conninfo, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(job.snapshot)))
        conn.execute(
            "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)",
            (job.user_id, str(job.org_id)),
        )
        # Two backends already use both cores; parallel workers would only compete.
        conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        conn.execute("SET LOCAL work_mem = '64MB'")
        # Read in txid order from the (org_id, txid) index and sort each transaction's rows
        # (an incremental sort): rows stream from the start instead of after a full sort.
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        with conn.cursor() as cur, cur.copy(job.statement) as copy:
            for data in copy:
                if not ok:
                    continue  # drain: the reference pass takes over
                line = bytes(data)
                parts = line.split(b"\t")
                if position >= n_expected:
                    tail.append(tail_key(parts))
                    continue
                position += 1
                h = base.copy()
                h.update(canonical(parts, line))
                push(h.digest())
                if len(digests) == BATCH:
                    end = done + BATCH * 32
                    ok = b"".join(digests) == expected[done:end]
                    done = end
                    digests.clear()
        conn.execute("ROLLBACK")
    if ok and digests:
        end = done + len(digests) * 32
        ok = b"".join(digests) == expected[done:end]
    return ok, position - job.start, tail


_SHARED: dict[str, bytes] = {}  # the stored leaves, inherited by forked workers


def _worker(job: _Job, pipe: Connection) -> None:
    gc.disable()  # never collect (and close) objects inherited from the parent
    try:
        result: Any = _stream(job, _SHARED["expected"])
    except BaseException as exc:
        result = f"{type(exc).__name__}: {exc}"
    pipe.send(result)
    pipe.close()


def parallel_available() -> bool:
    """Two cores, ``fork`` (a spawned worker would spend longer importing than hashing), and
    no thread that could hold a lock at the fork but the idle asyncio executor's (so a web
    server running blocking work in a thread pool keeps the single-connection path)."""
    if (os.cpu_count() or 1) < _WORKERS or "fork" not in multiprocessing.get_all_start_methods():
        return False
    main = threading.main_thread()
    return threading.current_thread() is main and all(
        t is main or t.name.startswith("asyncio_") for t in threading.enumerate()
    )


_EXPORT = (
    "SELECT pg_export_snapshot(), current_setting('app.user_id', true), "
    "current_setting('app.org_id', true), count(*), min(seq), max(seq), "
    "string_agg(leaf_hash, ''::bytea ORDER BY seq), "
    "array_agg(seq ORDER BY seq) FILTER (WHERE purged) "
    "FROM audit_seals WHERE org_id = %s"
)
_BOUNDARY = (
    "SELECT s.seq, e.txid, e.created_at, e.id FROM (SELECT seq, event_created_at, event_id "
    "FROM audit_seals WHERE org_id = %(org)s AND seq >= %(seq)s AND NOT purged "
    "ORDER BY seq LIMIT 1) s JOIN audit_logs e ON e.org_id = %(org)s "
    "AND e.created_at = s.event_created_at AND e.id = s.event_id"
)


def _conninfo(conn: AsyncConnection[Any]) -> str:
    info = conn.info
    password = info.password
    return make_conninfo(info.dsn, password=password) if password else info.dsn


async def parallel_pass(
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    *,
    min_leaves: int | None = None,
    while_waiting: Callable[[list[bytes]], object] | None = None,
) -> ParallelResult | bool | None:
    """Verify every sealed event on two workers.

    ``False`` if the log is too small or the parallel machinery is not available (the caller
    uses the single-connection fast path), ``None`` if anything needs the reference pass.
    ``while_waiting`` gets the stored leaves (seq order) while the workers run.
    """
    if conn.info.encoding.lower().replace("-", "") != "utf8" or not parallel_available():
        return False
    min_leaves = MIN_LEAVES if min_leaves is None else min_leaves
    async with conn.cursor(binary=True) as cur:
        await cur.execute(_EXPORT, (org_id,))
        row = await cur.fetchone()
        if row is None or row[3] < min_leaves:
            return False
        snapshot, user_id, context_org, count, lo, hi, raw, purged_raw = row
        if lo != 0 or hi != count - 1 or context_org != str(org_id):
            return None  # a gap (the reference pass names it), or a foreign context
        blob = bytes(raw)
        purged_seqs = list(purged_raw or [])
        await cur.execute(_BOUNDARY, {"org": org_id, "seq": count // 2})
        boundary = await cur.fetchone()
    if boundary is None:
        return None
    mid, key = int(boundary[0]), tuple(boundary[1:])
    leaves = [blob[i : i + 32] for i in range(0, len(blob), 32)]
    if purged_seqs:
        gone = set(purged_seqs)
        expected = b"".join(leaf for i, leaf in enumerate(leaves) if i not in gone)
        start = mid - sum(1 for seq in purged_seqs if seq < mid)
    else:
        expected, start = blob, mid
    conninfo = _conninfo(conn)
    halves = (
        (events_copy(org_id, before=True, key=key), 0),
        (events_copy(org_id, before=False, key=key), start),
    )
    jobs = [
        _Job(conninfo, snapshot, user_id or "", org_id, statement.as_bytes(conn), first)
        for statement, first in halves
    ]
    results = await _run(jobs, expected, lambda: while_waiting and while_waiting(leaves))
    if results is None:
        return False  # a worker failed (no second connection?): the single path decides
    (ok_a, n_a, tail_a), (ok_b, n_b, tail_b) = results
    if not (ok_a and ok_b) or tail_a or n_a != start or start + n_b != len(expected) // 32:
        return None
    return ParallelResult(leaves, len(purged_seqs), n_a + n_b, tail_b)


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


async def _run(
    jobs: list[_Job], expected: bytes, meanwhile: Callable[[], object]
) -> list[tuple[bool, int, list[tuple[str, str, int]]]] | None:
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
    results: list[tuple[bool, int, list[tuple[str, str, int]]]] | None = []
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
