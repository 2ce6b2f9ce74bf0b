"""The checks that need only the stored seals, checkpoints and sealer state, not the events.

Every checkpoint's signature, stored hash, ``previous_hash`` link and organisation
(:func:`check_chain`); every checkpoint root, recomputed from the stored leaf hashes in ``seq``
order (:func:`roots_from_leaves`, :class:`Frontier`); checkpoints beyond the seals, a tail no
checkpoint covers, and the sealer's state (:func:`finish`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from carelog.audit.integrity.checkpoint import Checkpoint, SignedCheckpoint, VerifyingKeyring
from carelog.audit.integrity.merkle import (
    EMPTY_ROOT,
    AccumulatorState,
    MerkleAccumulator,
    node_hash,
    root_from_leaf_hashes,
)
from carelog.audit.integrity.report import Problem, VerifyReport, problem_order
from carelog.db.unit import Unit

__all__ = [
    "Frontier",
    "check_chain",
    "check_root",
    "finish",
    "load_checkpoints",
    "roots_from_leaves",
]

CHECKPOINTS = sa.text(
    "SELECT org_id, tree_size, root_hash, issued_at, previous_hash, key_id, signature, "
    "checkpoint_hash, version FROM audit_checkpoints WHERE org_id = :org ORDER BY tree_size"
)
STATE = sa.text(
    "SELECT tree_size, frontier, horizon_txid FROM audit_seal_state WHERE org_id = :org"
)


class Frontier:
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


async def load_checkpoints(session: Unit, org_id: uuid.UUID) -> list[SignedCheckpoint]:
    """The org's signed checkpoints, oldest first (malformed rows are skipped)."""
    rows = (await session.execute(CHECKPOINTS, {"org": org_id})).all()
    out = []
    for row in rows:
        signed, _ = _signed_from_row(row)
        if signed is not None:
            out.append(signed)
    return out


def check_chain(
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


def roots_from_leaves(
    report: VerifyReport, leaves: list[bytes], sizes: list[int], roots: list[bytes]
) -> None:
    """Every checkpoint root recomputed from the stored leaves (seqs known contiguous)."""
    frontier = Frontier()
    for size, root in zip(sizes, roots, strict=True):
        if size > len(leaves):
            break
        frontier.extend(leaves[frontier.size : size])
        check_root(report, size, EMPTY_ROOT if size == 0 else frontier.root(), root)
    frontier.extend(leaves[frontier.size :])
    report.leaves = len(leaves)
    report.tree_size = frontier.size


def finish(
    report: VerifyReport,
    sizes: list[int],
    roots: list[bytes],
    state: Sequence[Any] | None,
    chain: list[SignedCheckpoint | None],
    max_problems: int,
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
    report.problems.sort(key=problem_order)
    del report.problems[max_problems:]
    return report


def check_root(report: VerifyReport, size: int, computed: bytes, stored: bytes) -> None:
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
