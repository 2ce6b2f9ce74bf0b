"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and an incremental accumulator.

The tree shape and hash prefixes are exactly Certificate Transparency's so that any
off-the-shelf CT verifier can check carelog's proofs; nothing here is carelog-specific.
All hashes are raw 32-byte SHA-256 digests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "AccumulatorState",
    "MerkleAccumulator",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()

# Copying a pre-fed hash object is measurably cheaper than concatenating the prefix
# into a fresh bytes object for every interior node, which matters for 10^6 leaves.
_NODE_PREFIXED = sha256(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    """The 0x00 prefix keeps a leaf from ever being mistaken for an interior node."""
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    h = _NODE_PREFIXED.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    # map() keeps the check at C speed; a wrong-length "hash" would otherwise be
    # folded in silently and produce a root nobody else can reproduce.
    if set(map(type, leaf_hashes)) <= {bytes} and set(map(len, leaf_hashes)) <= {HASH_SIZE}:
        return
    bad = next(i for i, h in enumerate(leaf_hashes) if not _is_hash(h))
    raise ValueError(f"leaf hash {bad} is not a {HASH_SIZE}-byte bytes value")


def _split(n: int) -> int:
    """RFC 6962's split point: the largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root(level: Sequence[bytes]) -> bytes:
    # Pairing level by level and carrying an odd last node up unchanged yields the
    # same tree as RFC 6962's recursive split, without recursion or slicing.
    if not level:
        return EMPTY_ROOT
    base = _NODE_PREFIXED
    while len(level) > 1:
        nxt: list[bytes] = []
        push = nxt.append
        it = iter(level)
        for left, right in zip(it, it, strict=False):
            h = base.copy()
            h.update(left)
            h.update(right)
            push(h.digest())
        if len(level) & 1:
            push(level[-1])
        level = nxt
    return level[0]


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, so callers can store leaf hashes and never rehash events."""
    _check_leaf_hashes(leaf_hashes)
    return _root(leaf_hashes)


def _prefix(leaf_hashes: Sequence[bytes], tree_size: int | None) -> Sequence[bytes]:
    if tree_size is None:
        return leaf_hashes
    if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size < 0:
        raise ValueError(f"tree_size must be a non-negative int, got {tree_size!r}")
    if tree_size > len(leaf_hashes):
        raise ValueError(f"tree_size {tree_size} exceeds the {len(leaf_hashes)} leaves supplied")
    return leaf_hashes[:tree_size]


def inclusion_proof(
    leaf_hashes: Sequence[bytes], index: int, tree_size: int | None = None
) -> list[bytes]:
    """RFC 9162 §2.1.3.1 audit path, leaf level first.

    ``tree_size`` lets a proof be issued against an older checkpoint than the full list.
    """
    leaves = _prefix(leaf_hashes, tree_size)
    n = len(leaves)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"leaf index {index!r} is outside a tree of size {n}")
    _check_leaf_hashes(leaves)
    lo, m = 0, index
    upper: list[bytes] = []
    while n > 1:
        k = _split(n)
        if m < k:
            upper.append(_root(leaves[lo + k : lo + n]))
            n = k
        else:
            upper.append(_root(leaves[lo : lo + k]))
            lo, m, n = lo + k, m - k, n - k
    upper.reverse()
    return upper


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 proof that the first ``old_size`` leaves are a prefix of ``new_size``."""
    for name, value in (("old_size", old_size), ("new_size", new_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if old_size > new_size:
        raise ValueError(f"old_size {old_size} is larger than new_size {new_size}")
    leaves = _prefix(leaf_hashes, new_size)
    _check_leaf_hashes(leaves)
    if old_size in (0, new_size):
        return []
    lo, m, n = 0, old_size, new_size
    whole_old_subtree = True
    upper: list[bytes] = []
    while m != n:
        k = _split(n)
        if m <= k:
            upper.append(_root(leaves[lo + k : lo + n]))
            n = k
        else:
            upper.append(_root(leaves[lo : lo + k]))
            lo, m, n = lo + k, m - k, n - k
            whole_old_subtree = False
    upper.reverse()
    return upper if whole_old_subtree else [_root(leaves[lo : lo + n]), *upper]


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_proof(proof: object) -> bool:
    return isinstance(proof, list | tuple) and all(_is_hash(p) for p in proof)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2. Never raises: anything malformed is simply not a proof.

    The path does not commit to ``tree_size`` on its own; ``root`` must come from a
    signed checkpoint, which binds the size to the root.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_proof(proof)):
        return False
    if not (_is_size(index) and _is_size(tree_size) and index < tree_size):
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, plus the degenerate cases the RFC leaves to the caller.

    Equal sizes need an empty proof and equal roots; an empty old tree needs an empty
    proof and the empty-tree root. Never raises.
    """
    if not (_is_hash(old_root) and _is_hash(new_root) and _is_proof(proof)):
        return False
    if not (_is_size(old_size) and _is_size(new_size) and old_size <= new_size):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


@dataclass(frozen=True, slots=True)
class AccumulatorState:
    """What a sealer stores between checkpoints: the size and its compact range.

    ``hashes`` are the roots of the perfect subtrees that make up the tree, largest
    (leftmost) first, one per set bit of ``size``.
    """

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not _is_size(self.size):
            raise ValueError(f"size must be a non-negative int, got {self.size!r}")
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a tree of size {self.size} needs {self.size.bit_count()} frontier hashes, "
                f"got {len(self.hashes)}"
            )
        if not all(_is_hash(h) for h in self.hashes):
            raise ValueError(f"frontier hashes must be {HASH_SIZE}-byte bytes values")

    def to_json_dict(self) -> dict[str, Any]:
        return {"size": self.size, "hashes": [h.hex() for h in self.hashes]}

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> AccumulatorState:
        try:
            size = data["size"]
            hashes = tuple(bytes.fromhex(h) for h in data["hashes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed accumulator state: {exc}") from exc
        return cls(size=size, hashes=hashes)


class MerkleAccumulator:
    """Extends a tree leaf by leaf in O(log n) memory, so sealing never re-reads history."""

    __slots__ = ("_frontier", "_size")

    def __init__(self, state: AccumulatorState | None = None) -> None:
        self._size = 0 if state is None else state.size
        self._frontier: list[bytes] = [] if state is None else list(state.hashes)

    @property
    def size(self) -> int:
        return self._size

    def state(self) -> AccumulatorState:
        return AccumulatorState(size=self._size, hashes=tuple(self._frontier))

    def append(self, leaf_hash: bytes) -> None:
        if not _is_hash(leaf_hash):
            raise ValueError(f"leaf hash must be a {HASH_SIZE}-byte bytes value")
        frontier = self._frontier
        frontier.append(leaf_hash)
        self._size += 1
        carry = self._size
        while not carry & 1:
            right = frontier.pop()
            frontier[-1] = node_hash(frontier[-1], right)
            carry >>= 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        frontier = self._frontier
        if not frontier:
            return EMPTY_ROOT
        r = frontier[-1]
        for h in reversed(frontier[:-1]):
            r = node_hash(h, r)
        return r

    def __repr__(self) -> str:
        return f"MerkleAccumulator(size={self._size})"
