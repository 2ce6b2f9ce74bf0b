"""Proofs a third party can check on its own: inclusion of one event, consistency of two
checkpoints (RFC 9162 §2.1.3 and §2.1.4, docs/integrity.md §3 and §9).

:class:`ProofTree` keeps every perfect-subtree hash of a tree, so each inclusion proof costs
O(log n); bundles (:mod:`carelog.audit.integrity.bundle`) use it for thousands of proofs.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from carelog.audit.integrity.chain import load_checkpoints
from carelog.audit.integrity.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from carelog.audit.integrity.rows import RowEncoder, event_lines, split_line
from carelog.db.unit import Unit

__all__ = ["ProofTree", "consistency_for", "org_leaf_hashes", "proof_for_event"]

SEAL_BY_EVENT = "SELECT seq FROM audit_seals WHERE org_id = %s AND event_id = %s"


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


async def org_leaf_hashes(session: Unit, org_id: uuid.UUID, tree_size: int) -> list[bytes]:
    rows = await session.execute(
        sa.text(
            "SELECT leaf_hash FROM audit_seals WHERE org_id = :org AND seq < :size ORDER BY seq"
        ),
        {"org": org_id, "size": tree_size},
    )
    return [bytes(r[0]) for r in rows]


async def proof_for_event(
    session: Unit,
    org_id: uuid.UUID,
    event_id: uuid.UUID,
    public_keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The event, its leaf index and an inclusion proof in the latest checkpoint covering it."""
    conn = session.driver
    rows = await event_lines(conn, org_id, event_id)
    async with conn.cursor() as cur:
        await cur.execute(SEAL_BY_EVENT, (org_id, str(event_id)))
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
    canonical = RowEncoder.exact(split_line(rows[0]))
    leaf = RowEncoder().leaf(rows[0])
    path = ProofTree(leaves).inclusion(seq, size)
    if leaves[seq] != leaf or not verify_inclusion(
        leaf, seq, size, path, signed.checkpoint.root_hash
    ):
        raise LookupError(
            f"event {event_id} (seq {seq}) does not verify against checkpoint {size}: "
            "run `carelog audit verify`"
        )
    key_id = signed.checkpoint.key_id
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
    session: Unit, org_id: uuid.UUID, old_size: int, new_size: int
) -> dict[str, Any]:
    """An RFC 9162 consistency proof between two of the org's signed checkpoints."""
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
