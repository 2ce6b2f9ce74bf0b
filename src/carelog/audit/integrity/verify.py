"""Verification from the database, and the proofs a third party can check on its own.

:func:`verify_org` recomputes one organization's log in a single streamed pass: every leaf
hash from the stored event (purged events are counted, not missing), contiguous sequence
numbers, every checkpoint root (incrementally, compared at each checkpoint's size), every
signature and ``previous_hash`` link, the sealer's state, and that no event is missing,
altered, duplicated, out of order, or unsealed beyond the sealing window. The report says
what was checked and, on failure, the first bad event or checkpoint and what is wrong.

Two streams are merged: the seals in ``seq`` order and the events in sealing order
``(txid, created_at, id)``. On an intact log they pair up one to one; the first place they
do not is examined with point queries to name the event and the fault.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from psycopg import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit.integrity.canonical import format_timestamp
from carelog.audit.integrity.checkpoint import Checkpoint, SignedCheckpoint, VerifyingKeyring
from carelog.audit.integrity.fastpath import FastResult, fast_pass
from carelog.audit.integrity.merkle import (
    EMPTY_ROOT,
    AccumulatorState,
    MerkleAccumulator,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from carelog.audit.integrity.parallel import ParallelResult, parallel_pass
from carelog.audit.integrity.rows import (
    EVENT_SELECT,
    FAST_SELECT,
    driver_connection,
    fast_leaf_hashes,
    leaf_hashes,
    row_canonical_bytes,
    text_cursor,
)

__all__ = [
    "DEFAULT_SEALING_WINDOW",
    "Problem",
    "ProofTree",
    "VerifyReport",
    "consistency_for",
    "load_checkpoints",
    "proof_for_event",
    "verify_org",
]

DEFAULT_SEALING_WINDOW = timedelta(minutes=5)
FETCH_ROWS = 10_000
# The events stream: FAST_SELECT's seven columns (id last), then created_at and txid.
_ID_AT, _CREATED_AT, _TXID_AT = 6, 7, 8

_CHECKPOINTS = sa.text(
    "SELECT org_id, tree_size, root_hash, issued_at, previous_hash, key_id, signature, "
    "checkpoint_hash, version FROM audit_checkpoints WHERE org_id = :org ORDER BY tree_size"
)
_STATE = sa.text(
    "SELECT tree_size, frontier, horizon_txid FROM audit_seal_state WHERE org_id = :org"
)
_TS = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_SEALS = (
    "SELECT seq, event_id, leaf_hash, purged, "
    + _TS.format("event_created_at")
    + " FROM audit_seals WHERE org_id = %(org)s ORDER BY seq"
)
_EVENTS = (
    f"SELECT {FAST_SELECT}, "
    + _TS.format("e.created_at")
    + ", e.txid FROM audit_logs e WHERE e.org_id = %(org)s SINCE"
    " ORDER BY e.txid, e.created_at, e.id"
)
_EVENT_BY_ID = f"SELECT {EVENT_SELECT}, e.txid FROM audit_logs e WHERE e.org_id = %s AND e.id = %s"
_SEAL_BY_EVENT = "SELECT seq FROM audit_seals WHERE org_id = %s AND event_id = %s"


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong, naming the event (with its seq) or the checkpoint."""

    kind: str
    message: str
    event_id: str | None = None
    seq: int | None = None
    tree_size: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "event_id": self.event_id,
            "seq": self.seq,
            "tree_size": self.tree_size,
        }


@dataclass
class VerifyReport:
    org_id: str
    leaves: int = 0
    events_checked: int = 0
    purged: int = 0
    skipped_before_since: int = 0
    pending: int = 0
    checkpoints: int = 0
    signatures: int = 0
    links: int = 0
    roots: int = 0
    tree_size: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def events_per_second(self) -> float:
        return self.events_checked / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        checked = (
            f"org {self.org_id}: {self.leaves:,} leaves, {self.events_checked:,} events "
            f"re-hashed, {self.purged:,} purged, {self.checkpoints:,} checkpoints "
            f"({self.signatures:,} signatures, {self.links:,} links, {self.roots:,} roots), "
            f"{self.pending:,} pending sealing"
        )
        if self.ok:
            return f"OK   {checked}"
        return f"FAIL {checked}\n     first problem: {self.problems[0].message}"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "ok": self.ok,
            "leaves": self.leaves,
            "events_checked": self.events_checked,
            "purged": self.purged,
            "skipped_before_since": self.skipped_before_since,
            "pending": self.pending,
            "checkpoints": self.checkpoints,
            "signatures": self.signatures,
            "links": self.links,
            "roots": self.roots,
            "tree_size": self.tree_size,
            "seconds": round(self.seconds, 3),
            "problems": [p.to_json_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------- roots
class _Frontier:
    """An accumulator fed whole aligned blocks at a time (one C-speed root per block)."""

    def __init__(self) -> None:
        self.size = 0
        self.hashes: list[bytes] = []

    def extend(self, leaves: Sequence[bytes]) -> None:
        i, n = 0, len(leaves)
        hashes = self.hashes
        while i < n:
            remaining = n - i
            height = remaining.bit_length() - 1
            if self.size:
                height = min(height, (self.size & -self.size).bit_length() - 1)
            width = 1 << height
            node = leaves[i] if width == 1 else root_from_leaf_hashes(leaves[i : i + width])
            hashes.append(node)
            self.size += width
            carry = self.size >> height
            while not carry & 1:
                right = hashes.pop()
                hashes[-1] = node_hash(hashes[-1], right)
                carry >>= 1
            i += width

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r


# --------------------------------------------------------------------------- checkpoints
def _signed_from_row(row: Sequence[Any]) -> tuple[SignedCheckpoint | None, str | None]:
    try:
        checkpoint = Checkpoint(
            org_id=str(row[0]),
            tree_size=int(row[1]),
            root_hash=bytes(row[2]),
            issued_at=row[3],
            previous_hash=None if row[4] is None else bytes(row[4]),
            key_id=str(row[5]),
            version=int(row[8]),
        )
        return SignedCheckpoint(checkpoint, bytes(row[6])), None
    except ValueError as exc:
        return None, str(exc)


async def load_checkpoints(session: AsyncSession, org_id: uuid.UUID) -> list[SignedCheckpoint]:
    """The org's signed checkpoints, oldest first (malformed rows are skipped)."""
    rows = (await session.execute(_CHECKPOINTS, {"org": org_id})).all()
    out = []
    for row in rows:
        signed, _ = _signed_from_row(row)
        if signed is not None:
            out.append(signed)
    return out


def _check_chain(
    report: VerifyReport,
    org_id: uuid.UUID,
    rows: Sequence[Sequence[Any]],
    keyring: VerifyingKeyring,
) -> list[SignedCheckpoint | None]:
    chain: list[SignedCheckpoint | None] = []
    previous: bytes | None = None
    for row in rows:
        size = int(row[1])
        report.checkpoints += 1
        signed, error = _signed_from_row(row)
        chain.append(signed)
        if signed is None:
            report.problems.append(
                Problem(
                    "checkpoint",
                    f"checkpoint at tree size {size} is malformed: {error}",
                    tree_size=size,
                )
            )
            previous = bytes(row[7])
            continue
        cp = signed.checkpoint
        if cp.org_id != str(org_id):
            report.problems.append(
                Problem(
                    "checkpoint",
                    f"checkpoint at tree size {size} names org {cp.org_id}",
                    tree_size=size,
                )
            )
        if keyring.verify(signed):
            report.signatures += 1
        else:
            known = cp.key_id in keyring.key_ids
            why = "bad signature" if known else f"unknown key id {cp.key_id!r}"
            report.problems.append(
                Problem(
                    "checkpoint", f"checkpoint at tree size {size} replaced: {why}", tree_size=size
                )
            )
        computed = signed.checkpoint_hash()
        if bytes(row[7]) != computed:
            report.problems.append(
                Problem(
                    "checkpoint",
                    f"checkpoint at tree size {size}: stored checkpoint "
                    "hash does not match its contents",
                    tree_size=size,
                )
            )
        if cp.previous_hash != previous:
            report.problems.append(
                Problem(
                    "checkpoint",
                    f"checkpoint at tree size {size}: previous_hash does "
                    "not link to the checkpoint before it",
                    tree_size=size,
                )
            )
        else:
            report.links += 1
        previous = computed
    return chain


# --------------------------------------------------------------------------- the pass
class _Events:
    """The events stream with leaf hashes per batch; the next FETCH is in flight meanwhile.

    The next batch is requested before this one is hashed, so PostgreSQL produces rows on
    one core while Python hashes on the other.
    """

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.rows: list[Any] = []
        self.leaves: list[bytes] = []
        self.i = 0
        self.done = False
        self._next: asyncio.Task[list[Any]] | None = None

    async def _fetch(self) -> list[Any]:
        if self._next is None:
            rows: list[Any] = await self.cursor.fetchmany(FETCH_ROWS)
        else:
            rows = await self._next
        self._next = None
        if rows:
            self._next = asyncio.ensure_future(self.cursor.fetchmany(FETCH_ROWS))
            await asyncio.sleep(0)  # let it send the FETCH before we hash
        return rows

    async def _refill(self) -> bool:
        if self.i < len(self.rows):
            return True
        if self.done:
            return False
        rows = await self._fetch()
        self.i = 0
        self.rows = rows
        if not rows:
            self.done = True
            return False
        self.leaves = fast_leaf_hashes(rows)
        return True

    async def peek(self) -> tuple[Any, bytes] | None:
        if not await self._refill():
            return None
        return self.rows[self.i], self.leaves[self.i]

    def advance(self) -> None:
        self.i += 1

    async def available(self, n: int) -> tuple[list[str], list[bytes]]:
        """Up to ``n`` buffered (ids, leaves) from the current batch, not consumed."""
        if not await self._refill():
            return [], []
        j = min(len(self.rows), self.i + n)
        return [r[_ID_AT] for r in self.rows[self.i : j]], self.leaves[self.i : j]

    def skip(self, n: int) -> None:
        self.i += n

    async def close(self) -> None:
        if self._next is not None:
            try:
                await self._next
            finally:
                self._next = None


async def _diagnose(
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    seq: int,
    sealed_id: str,
    sealed_leaf: bytes,
    found: tuple[Any, bytes] | None,
) -> Problem:
    """Seal ``seq`` and the event stream disagree: find out which event is wrong, and how."""
    async with text_cursor(conn) as cur:
        await cur.execute(_EVENT_BY_ID, (org_id, sealed_id))
        rows = await cur.fetchall()
        if not rows:
            return Problem(
                "missing",
                f"event {sealed_id} (seq {seq}) missing: sealed but no longer in the log "
                "(and not purged by retention)",
                sealed_id,
                seq,
            )
        if len(rows) > 1:
            return Problem(
                "duplicated",
                f"event {sealed_id} (seq {seq}) duplicated: {len(rows)} rows share its id",
                sealed_id,
                seq,
            )
        if leaf_hashes(rows)[0] != sealed_leaf:
            return Problem(
                "altered",
                f"event {sealed_id} (seq {seq}) altered: leaf hash mismatch",
                sealed_id,
                seq,
            )
        if found is None:  # pragma: no cover - the sealed event exists, so the stream has it
            return Problem("order", f"event {sealed_id} (seq {seq}) out of order", sealed_id, seq)
        other = str(found[0][_ID_AT])
        await cur.execute(_SEAL_BY_EVENT, (org_id, other))
        seal = await cur.fetchone()
    if seal is None:
        return Problem(
            "unsealed",
            f"event {other} inserted/forged or unsealed: it is in the log before sealed event "
            f"{sealed_id} (seq {seq}) but has no seal",
            other,
        )
    return Problem(
        "order",
        f"events out of order: seq {seq} holds event {sealed_id}, but the log orders event "
        f"{other} (sealed at seq {int(seal[0])}) first",
        sealed_id,
        seq,
    )


async def _unsealed_problem(
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    row: Sequence[Any],
    horizon: int,
    cutoff: str,
) -> Problem | None:
    """An event with no seal: fine while it is young and above the horizon, else a fault."""
    event_id, created, txid = str(row[_ID_AT]), str(row[_CREATED_AT]), int(row[_TXID_AT])
    if txid >= horizon and created >= cutoff:
        return None
    async with conn.cursor() as cur:
        await cur.execute(_SEAL_BY_EVENT, (org_id, event_id))
        seal = await cur.fetchone()
    if seal is not None:
        return Problem(
            "duplicated",
            f"event {event_id} duplicated: another row with this id is sealed at seq {seal[0]}",
            event_id,
        )
    why = (
        "its transaction is below the sealer's horizon"
        if txid < horizon
        else "it is older than the sealing window"
    )
    return Problem(
        "unsealed",
        f"event {event_id} (created {created}) inserted/forged or unsealed: {why}",
        event_id,
    )


async def verify_org(
    session: AsyncSession,
    org_id: uuid.UUID,
    keyring: VerifyingKeyring,
    *,
    sealing_window: timedelta = DEFAULT_SEALING_WINDOW,
    since: datetime | None = None,
    now: datetime | None = None,
    max_problems: int = 20,
) -> VerifyReport:
    """Recompute one organization's log inside ``session`` (system role, or an org admin).

    ``since`` re-hashes only events created from then on; every root, signature and link is
    still checked, from the stored leaf hashes of older events.
    """
    started = time.perf_counter()
    report = VerifyReport(str(org_id))
    now = now or datetime.now(UTC)
    cutoff = format_timestamp(now - sealing_window)
    since_text = None if since is None else format_timestamp(since)

    rows = (await session.execute(_CHECKPOINTS, {"org": org_id})).all()
    chain = _check_chain(report, org_id, rows, keyring)
    sizes = [int(r[1]) for r in rows]
    roots = [bytes(r[2]) for r in rows]
    state = (await session.execute(_STATE, {"org": org_id})).first()
    horizon = 0 if state is None else int(state[2])

    conn = await driver_connection(session)
    if since is None:
        # Two workers when the log is large and the process may fork (the CLI, the
        # benchmark); else one connection. Either hands anything odd to the reference pass.
        early = VerifyReport(report.org_id)  # roots from the stored leaves, while hashing

        def early_roots(leaves: list[bytes]) -> None:
            _roots_from_leaves(early, leaves, sizes, roots)

        fast: ParallelResult | FastResult | bool | None = await parallel_pass(
            conn, org_id, while_waiting=early_roots
        )
        if fast is False:
            fast = await fast_pass(conn, org_id)
            if isinstance(fast, FastResult):
                early_roots(fast.leaves)
        if isinstance(fast, ParallelResult | FastResult):
            report.purged, report.events_checked = fast.purged, fast.events_checked
            report.leaves, report.tree_size = early.leaves, early.tree_size
            report.roots = early.roots
            report.problems.extend(early.problems)
            for event_id, created, txid in fast.tail:
                row = (None,) * _ID_AT + (event_id, created, txid)
                problem = await _unsealed_problem(conn, org_id, row, horizon, cutoff)
                if problem is None:
                    report.pending += 1
                elif len(report.problems) < max_problems:
                    report.problems.append(problem)
            return _finish(report, sizes, roots, state, chain, max_problems, started)
    frontier = _Frontier()
    pending_leaves: list[bytes] = []
    ci = 0
    while ci < len(sizes) and sizes[ci] == 0:
        _check_root(report, 0, EMPTY_ROOT, roots[ci])
        ci += 1
    in_sync = True
    expected = 0
    suffix = "" if since is None else "AND e.created_at >= %(since)s"
    params: dict[str, Any] = {"org": org_id, "since": since}
    seals_cursor = text_cursor(conn, f"verify_seals_{uuid.uuid4().hex}")
    events_cursor = text_cursor(conn, f"verify_events_{uuid.uuid4().hex}")
    async with seals_cursor as seals, events_cursor as evc:
        await seals.execute(_SEALS, {"org": org_id})
        await evc.execute(_EVENTS.replace("SINCE", suffix), params)
        events = _Events(evc)
        try:
            while batch := await seals.fetchmany(FETCH_ROWS):
                # 1. leaves in order, contiguous seqs, roots at each checkpoint size
                first_seq = batch[0][0]
                if first_seq == expected and batch[-1][0] == expected + len(batch) - 1:
                    leaves = [r[2] for r in batch]
                    expected += len(batch)
                else:
                    leaves = []
                    for row in batch:
                        seq = row[0]
                        if seq != expected:
                            report.problems.append(
                                Problem(
                                    "sequence",
                                    f"seal seq {expected} missing: the next "
                                    f"seal is seq {seq} (event {row[1]})",
                                    str(row[1]),
                                    expected,
                                )
                            )
                            expected = seq
                        expected += 1
                        leaves.append(row[2])
                start = expected - len(leaves)
                done = 0
                while ci < len(sizes) and sizes[ci] <= expected:
                    cut = sizes[ci] - start
                    pending_leaves.extend(leaves[done:cut])
                    done = cut
                    frontier.extend(pending_leaves)
                    pending_leaves.clear()
                    _check_root(report, sizes[ci], frontier.root(), roots[ci])
                    ci += 1
                pending_leaves.extend(leaves[done:])
                if len(pending_leaves) > 65536:
                    frontier.extend(pending_leaves)
                    pending_leaves.clear()
                # 2. events: whole runs compared at once while seals and log agree
                k = 0
                while in_sync and k < len(batch):
                    seal_ids = [r[1] for r in batch[k : k + FETCH_ROWS]]
                    ids, ev_leaves = await events.available(len(batch) - k)
                    m = len(ids)
                    if (
                        m
                        and since_text is None
                        and ids == seal_ids[:m]
                        and ev_leaves == leaves[k : k + m]
                        and not any(r[3] for r in batch[k : k + m])
                    ):
                        events.skip(m)
                        report.events_checked += m
                        k += m
                        continue
                    in_sync = await _one(report, conn, org_id, batch[k], events, since_text)
                    k += 1
        finally:
            await events.close()
        frontier.extend(pending_leaves)
        report.leaves = expected
        report.tree_size = frontier.size
        # Events no seal has claimed: pending, or forged/unsealed beyond the window.
        if in_sync:
            while (found := await events.peek()) is not None:
                events.advance()
                problem = await _unsealed_problem(conn, org_id, found[0], horizon, cutoff)
                if problem is None:
                    report.pending += 1
                elif len(report.problems) < max_problems:
                    report.problems.append(problem)
    return _finish(report, sizes, roots, state, chain, max_problems, started)


def _roots_from_leaves(
    report: VerifyReport, leaves: list[bytes], sizes: list[int], roots: list[bytes]
) -> None:
    """Every checkpoint root recomputed from the stored leaves (seqs known contiguous)."""
    frontier = _Frontier()
    for size, root in zip(sizes, roots, strict=True):
        if size > len(leaves):
            break
        frontier.extend(leaves[frontier.size : size])
        _check_root(report, size, EMPTY_ROOT if size == 0 else frontier.root(), root)
    frontier.extend(leaves[frontier.size :])
    report.leaves = len(leaves)
    report.tree_size = frontier.size


def _finish(
    report: VerifyReport,
    sizes: list[int],
    roots: list[bytes],
    state: Sequence[Any] | None,
    chain: list[SignedCheckpoint | None],
    max_problems: int,
    started: float,
) -> VerifyReport:
    """Checkpoints beyond the seals, an uncovered tail, the sealer state; then the report."""
    ci = sum(1 for size in sizes if size <= report.leaves)
    for size in sizes[ci:]:
        report.problems.append(
            Problem(
                "checkpoint",
                f"checkpoint at tree size {size} covers leaves that do not "
                f"exist: only {report.leaves} seals (seals deleted?)",
                tree_size=size,
            )
        )
    last = sizes[-1] if sizes else 0
    if report.leaves > last:
        report.problems.append(
            Problem(
                "truncated",
                f"seals {last}..{report.leaves - 1} are not covered by any "
                "checkpoint: checkpoints after the last one were removed",
                seq=last,
            )
        )
    _check_state(report, state, sizes, roots, chain)
    report.problems.sort(key=_problem_order)
    del report.problems[max_problems:]
    report.seconds = time.perf_counter() - started
    return report


async def _one(
    report: VerifyReport,
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    seal: Sequence[Any],
    events: _Events,
    since_text: str | None,
) -> bool:
    """One seal against the log, the slow way; False once the two have parted."""
    seq, sealed_id, leaf, purged, created = seal
    if since_text is not None and created < since_text:
        report.skipped_before_since += 1
        return True
    found = await events.peek()
    if purged and (found is None or found[0][_ID_AT] != sealed_id):
        report.purged += 1
        return True
    if found is not None and found[0][_ID_AT] == sealed_id:
        events.advance()
        report.events_checked += 1
        if found[1] != leaf:
            report.problems.append(
                Problem(
                    "altered",
                    f"event {sealed_id} (seq {seq}) altered: leaf hash mismatch",
                    sealed_id,
                    seq,
                )
            )
            return False
        return True
    report.problems.append(await _diagnose(conn, org_id, seq, sealed_id, leaf, found))
    return False


def _problem_order(problem: Problem) -> tuple[int, int]:
    if problem.seq is not None:
        return (0, problem.seq)
    if problem.tree_size is not None:
        return (0, max(0, problem.tree_size - 1))
    return (1, 0)


def _check_root(report: VerifyReport, size: int, computed: bytes, stored: bytes) -> None:
    report.roots += 1
    if computed != stored:
        report.problems.append(
            Problem(
                "checkpoint",
                f"checkpoint at tree size {size}: root hash does not match "
                "the recomputed tree (leaves altered, removed or reordered before it)",
                tree_size=size,
            )
        )


def _check_state(
    report: VerifyReport,
    state: Sequence[Any] | None,
    sizes: list[int],
    roots: list[bytes],
    chain: list[SignedCheckpoint | None],
) -> None:
    if state is None:
        if report.leaves:
            report.problems.append(Problem("state", "the sealer's state for this org is missing"))
        return
    size = int(state[0])
    if size != report.leaves:
        report.problems.append(
            Problem(
                "truncated",
                f"the sealer sealed {size} leaves but {report.leaves} seals "
                f"remain (tail truncated after seq {report.leaves - 1})",
                seq=report.leaves,
            )
        )
        return
    try:
        frontier = MerkleAccumulator(AccumulatorState.from_json_dict(state[1]))
    except ValueError:
        report.problems.append(Problem("state", "the sealer's stored frontier is malformed"))
        return
    if sizes and sizes[-1] == size and frontier.root() != roots[-1]:
        report.problems.append(
            Problem("state", "the sealer's stored frontier does not match the last checkpoint")
        )


# --------------------------------------------------------------------------- proofs
class ProofTree:
    """All perfect-subtree hashes of a tree, so each inclusion proof costs O(log n)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        level = self.levels[0]
        while len(level) > 1:
            it = iter(level)
            level = [node_hash(a, b) for a, b in zip(it, it, strict=False)]
            self.levels.append(level)
        self._cache: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def range_root(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self.levels[n.bit_length() - 1][lo // n]
        key = (lo, hi)
        cached = self._cache.get(key)
        if cached is None:
            k = 1 << ((n - 1).bit_length() - 1)
            cached = node_hash(self.range_root(lo, lo + k), self.range_root(lo + k, hi))
            self._cache[key] = cached
        return cached

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        if not 0 <= index < tree_size <= self.size:
            raise ValueError(f"leaf {index} is not in a tree of size {tree_size}")
        lo, m, n = 0, index, tree_size
        path: list[bytes] = []
        while n > 1:
            k = 1 << ((n - 1).bit_length() - 1)
            if m < k:
                path.append(self.range_root(lo + k, lo + n))
                n = k
            else:
                path.append(self.range_root(lo, lo + k))
                lo, m, n = lo + k, m - k, n - k
        path.reverse()
        return path


async def org_leaf_hashes(session: AsyncSession, org_id: uuid.UUID, tree_size: int) -> list[bytes]:
    rows = await session.execute(
        sa.text(
            "SELECT leaf_hash FROM audit_seals WHERE org_id = :org AND seq < :size ORDER BY seq"
        ),
        {"org": org_id, "size": tree_size},
    )
    return [bytes(r[0]) for r in rows]


async def proof_for_event(
    session: AsyncSession,
    org_id: uuid.UUID,
    event_id: uuid.UUID,
    public_keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The event, its leaf index and an inclusion proof in the latest checkpoint covering it."""
    conn = await driver_connection(session)
    async with text_cursor(conn) as cur:
        await cur.execute(_EVENT_BY_ID, (org_id, str(event_id)))
        rows = await cur.fetchall()
        await cur.execute(_SEAL_BY_EVENT, (org_id, str(event_id)))
        seal = await cur.fetchone()
    if len(rows) != 1:
        raise LookupError(f"event {event_id} is not in the log of org {org_id}")
    if seal is None:
        raise LookupError(f"event {event_id} is not sealed yet; try again after the next pass")
    seq = int(seal[0])
    checkpoints = list(await load_checkpoints(session, org_id))
    covering = [c for c in checkpoints if c.checkpoint.tree_size > seq]
    if not covering:
        raise LookupError(f"no signed checkpoint covers event {event_id} (seq {seq}) yet")
    signed = covering[-1]
    size = signed.checkpoint.tree_size
    leaves = await org_leaf_hashes(session, org_id, size)
    canonical = row_canonical_bytes(rows[0])
    leaf = leaf_hashes(rows)[0]
    path = ProofTree(leaves).inclusion(seq, size)
    if leaves[seq] != leaf or not verify_inclusion(
        leaf, seq, size, path, signed.checkpoint.root_hash
    ):
        raise LookupError(
            f"event {event_id} (seq {seq}) does not verify against checkpoint {size}: "
            "run `carelog audit verify`"
        )
    key_id = signed.checkpoint.key_id
    import orjson

    return {
        "org_id": str(org_id),
        "event": orjson.loads(canonical),
        "canonical": base64.b64encode(canonical).decode("ascii"),
        "leaf_index": seq,
        "leaf_hash": leaf.hex(),
        "tree_size": size,
        "inclusion_proof": [p.hex() for p in path],
        "checkpoint": signed.to_json_dict(),
        "key_id": key_id,
        "public_key": (public_keys or {}).get(key_id),
    }


async def consistency_for(
    session: AsyncSession, org_id: uuid.UUID, old_size: int, new_size: int
) -> dict[str, Any]:
    """An RFC 9162 consistency proof between two of the org's signed checkpoints."""
    from carelog.audit.integrity.merkle import consistency_proof

    by_size = {c.checkpoint.tree_size: c for c in await load_checkpoints(session, org_id)}
    if old_size not in by_size or new_size not in by_size:
        missing = old_size if old_size not in by_size else new_size
        raise LookupError(f"org {org_id} has no checkpoint at tree size {missing}")
    old, new = by_size[old_size], by_size[new_size]
    leaves = await org_leaf_hashes(session, org_id, new_size)
    proof = consistency_proof(leaves, old_size, new_size)
    if not verify_consistency(
        old_size, new_size, old.checkpoint.root_hash, new.checkpoint.root_hash, proof
    ):
        raise LookupError("the stored leaves do not prove these checkpoints consistent")
    return {
        "org_id": str(org_id),
        "old_size": old_size,
        "new_size": new_size,
        "consistency_proof": [p.hex() for p in proof],
        "old_checkpoint": old.to_json_dict(),
        "new_checkpoint": new.to_json_dict(),
    }
