"""The reference pass of :func:`carelog.audit.integrity.verify.verify_org`: one seal at a time.

It runs when the bulk scan (:mod:`carelog.audit.integrity.scan`) saw anything unexpected, and
names what is wrong. Two streams are merged: the seals in ``seq`` order and the events in
sealing order ``(txid, created_at, id)``, each read in bounded keyset pages (so the two never
hold the connection at once). While they pair up one to one, whole runs are compared at once;
the first place they do not is examined with point queries to name the event and the fault:
altered, missing, duplicated, out of order, or inserted/unsealed. The same pass recomputes
every checkpoint root from the stored leaves as it goes, and checks the seqs are contiguous.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql

from carelog.audit.integrity.chain import Frontier, check_root
from carelog.audit.integrity.merkle import EMPTY_ROOT
from carelog.audit.integrity.report import Problem, VerifyReport
from carelog.audit.integrity.rows import (
    LineKey,
    RowEncoder,
    copy_lines,
    event_lines,
    events_copy,
    line_key,
    split_line,
)

__all__ = ["FETCH_ROWS", "reference_pass", "unsealed_problem"]

FETCH_ROWS = 10_000
_TS = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_SEALS = (
    "SELECT seq, event_id::text, leaf_hash, purged, "
    + _TS.format("event_created_at")
    + " FROM audit_seals WHERE org_id = %s AND seq > %s ORDER BY seq LIMIT %s"
)
_SEAL_BY_EVENT = "SELECT seq FROM audit_seals WHERE org_id = %s AND event_id = %s"


class _Events:
    """The events in sealing order, a keyset page at a time, with their leaf hashes."""

    def __init__(self, conn: AsyncConnection[Any], org_id: uuid.UUID, since: str | None):
        self.conn, self.org_id = conn, org_id
        self.where = (
            None
            if since is None
            else sql.SQL("e.created_at >= {}::timestamptz").format(sql.Literal(since))
        )
        self.keys: list[LineKey] = []
        self.leaves: list[bytes] = []
        self.i = 0
        self.last: LineKey | None = None
        self.done = False
        self.encoder = RowEncoder()

    async def _refill(self) -> bool:
        if self.i < len(self.keys):
            return True
        if self.done:
            return False
        statement = events_copy(self.org_id, after=self.last, where=self.where, limit=FETCH_ROWS)
        lines = await copy_lines(self.conn, statement)
        self.i = 0
        self.keys = [line_key(split_line(line)) for line in lines]
        self.leaves = self.encoder.leaves(lines)
        if len(lines) < FETCH_ROWS:
            self.done = True
        if not lines:
            return False
        self.last = self.keys[-1]
        return True

    async def peek(self) -> tuple[LineKey, bytes] | None:
        if not await self._refill():
            return None
        return self.keys[self.i], self.leaves[self.i]

    def advance(self, n: int = 1) -> None:
        self.i += n

    async def available(self, n: int) -> tuple[list[str], list[bytes]]:
        """Up to ``n`` buffered (ids, leaves) of the current page, not consumed."""
        if not await self._refill():
            return [], []
        j = min(len(self.keys), self.i + n)
        return [k[0] for k in self.keys[self.i : j]], self.leaves[self.i : j]


async def _diagnose(
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    seq: int,
    sealed_id: str,
    sealed_leaf: bytes,
    found: tuple[LineKey, bytes] | None,
) -> Problem:
    """Seal ``seq`` and the event stream disagree: find out which event is wrong, and how."""
    rows = await event_lines(conn, org_id, sealed_id)
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
    if RowEncoder().leaf(rows[0]) != sealed_leaf:
        return Problem(
            "altered", f"event {sealed_id} (seq {seq}) altered: leaf hash mismatch", sealed_id, seq
        )
    if found is None:  # pragma: no cover - the sealed event exists, so the stream has it
        return Problem("order", f"event {sealed_id} (seq {seq}) out of order", sealed_id, seq)
    other = found[0][0]
    async with conn.cursor() as cur:
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


async def unsealed_problem(
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    key: LineKey,
    horizon: int,
    cutoff: str,
    known_seals: int,
) -> Problem | None:
    """An event no seal claimed: fine while young and above the horizon, else a fault.

    A seal at ``seq >= known_seals`` was added after the seals were read (a sealing pass ran
    meanwhile): the event is pending from this verification's point of view.
    """
    event_id, created, txid = key
    if txid >= horizon and created >= cutoff:
        return None
    async with conn.cursor() as cur:
        await cur.execute(_SEAL_BY_EVENT, (org_id, event_id))
        seal = await cur.fetchone()
    if seal is not None:
        if int(seal[0]) >= known_seals:
            return None
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


async def _one(
    report: VerifyReport,
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    seal: Sequence[Any],
    events: _Events,
    since: str | None,
) -> bool:
    """One seal against the log, the slow way; False once the two have parted."""
    seq, sealed_id, leaf, purged, created = seal
    if since is not None and created < since:
        report.skipped_before_since += 1
        return True
    found = await events.peek()
    if purged and (found is None or found[0][0] != sealed_id):
        report.purged += 1
        return True
    if found is not None and found[0][0] == sealed_id:
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


def _contiguous(report: VerifyReport, batch: list[Any], expected: int) -> tuple[list[bytes], int]:
    """The batch's leaves; a gap in the seqs is a problem naming the seal after it."""
    if batch[0][0] == expected and batch[-1][0] == expected + len(batch) - 1:
        return [r[2] for r in batch], expected + len(batch)
    leaves = []
    for row in batch:
        seq = row[0]
        if seq != expected:
            report.problems.append(
                Problem(
                    "sequence",
                    f"seal seq {expected} missing: the next seal is seq {seq} (event {row[1]})",
                    str(row[1]),
                    expected,
                )
            )
            expected = seq
        expected += 1
        leaves.append(row[2])
    return leaves, expected


async def reference_pass(
    report: VerifyReport,
    conn: AsyncConnection[Any],
    org_id: uuid.UUID,
    sizes: list[int],
    roots: list[bytes],
    *,
    since: str | None,
    horizon: int,
    cutoff: str,
    max_problems: int,
) -> None:
    """Leaves, roots and events seal by seal; fills ``report`` (counts and problems)."""
    frontier = Frontier()
    pending_leaves: list[bytes] = []
    ci = 0
    while ci < len(sizes) and sizes[ci] == 0:
        check_root(report, 0, EMPTY_ROOT, roots[ci])
        ci += 1
    in_sync = True
    expected = 0
    last_seq = -1
    events = _Events(conn, org_id, since)
    while True:
        async with conn.cursor() as cur:
            await cur.execute(_SEALS, (org_id, last_seq, FETCH_ROWS))
            batch = await cur.fetchall()
        if not batch:
            break
        last_seq = batch[-1][0]
        # 1. leaves in order, contiguous seqs, roots at each checkpoint size
        leaves, expected = _contiguous(report, batch, expected)
        start = expected - len(leaves)
        done = 0
        while ci < len(sizes) and sizes[ci] <= expected:
            cut = sizes[ci] - start
            pending_leaves.extend(leaves[done:cut])
            done = cut
            frontier.extend(pending_leaves)
            pending_leaves.clear()
            check_root(report, sizes[ci], frontier.root(), roots[ci])
            ci += 1
        pending_leaves.extend(leaves[done:])
        if len(pending_leaves) > 65536:
            frontier.extend(pending_leaves)
            pending_leaves.clear()
        # 2. events: whole runs compared at once while seals and log agree
        k = 0
        while in_sync and k < len(batch):
            seal_ids = [r[1] for r in batch[k:]]
            ids, ev_leaves = await events.available(len(batch) - k)
            m = len(ids)
            if (
                m
                and since is None
                and ids == seal_ids[:m]
                and ev_leaves == leaves[k : k + m]
                and not any(r[3] for r in batch[k : k + m])
            ):
                events.advance(m)
                report.events_checked += m
                k += m
                continue
            in_sync = await _one(report, conn, org_id, batch[k], events, since)
            k += 1
    frontier.extend(pending_leaves)
    report.leaves = expected
    report.tree_size = frontier.size
    # Events no seal has claimed: pending, or forged/unsealed beyond the window.
    if in_sync:
        while (found := await events.peek()) is not None:
            events.advance()
            problem = await unsealed_problem(conn, org_id, found[0], horizon, cutoff, expected)
            if problem is None:
                report.pending += 1
            elif len(report.problems) < max_problems:
                report.problems.append(problem)
