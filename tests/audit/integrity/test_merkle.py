"""RFC 6962 tree, proofs and accumulator against published vectors and a naive reference."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carelog.audit.integrity.merkle import (
    EMPTY_ROOT,
    AccumulatorState,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go (the CT reference vectors).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
CT_CONSISTENCY = [
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip

MAX = 300
LEAVES = [leaf_hash(b"leaf-%d" % i) for i in range(MAX)]


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 taken literally: recursive split at the largest power of two < n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


ROOTS = [naive_mth(LEAVES[:n]) for n in range(MAX + 1)]


def test_hash_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]


def test_ct_roots() -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    for n, want in enumerate(CT_ROOTS):
        assert root_from_leaf_hashes(hashes[:n]).hex() == want
        acc = MerkleAccumulator()
        acc.extend(hashes[:n])
        assert acc.root().hex() == want


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_ct_inclusion(index: int, size: int, proof: list[str]) -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    assert [p.hex() for p in inclusion_proof(hashes, index, size)] == proof
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(hashes[index], index, size, [bytes.fromhex(p) for p in proof], root)


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_ct_consistency(old: int, new: int, proof: list[str]) -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    assert [p.hex() for p in consistency_proof(hashes, old, new)] == proof
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, [bytes.fromhex(p) for p in proof])


def test_batch_root_matches_naive_for_every_small_size() -> None:
    for n in range(MAX + 1):
        assert root_from_leaf_hashes(LEAVES[:n]) == ROOTS[n]


def _mutations(proof: list[bytes], data: st.DataObject) -> list[list[bytes]]:
    """Altered copies of a proof: bit flip, drop, insert, swap of two distinct elements."""
    out: list[list[bytes]] = []
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    pos = data.draw(st.integers(0, len(proof)), label="insert_at")
    out.append([*proof[:pos], extra, *proof[pos:]])
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        flipped = bytearray(proof[i])
        flipped[bit // 8] ^= 1 << (bit % 8)
        out.append([*proof[:i], bytes(flipped), *proof[i + 1 :]])
        out.append([*proof[:i], *proof[i + 1 :]])
    if len(proof) >= 2:
        i, j = data.draw(st.lists(st.integers(0, len(proof) - 1), min_size=2, max_size=2,
                                  unique=True), label="swap")  # fmt: skip
        swapped = list(proof)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        out.append(swapped)
    return out


@settings(max_examples=300)
@given(st.data())
def test_inclusion_proofs_verify_and_tampering_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, MAX), label="size")
    i = data.draw(st.integers(0, n - 1), label="index")
    leaf, root = LEAVES[i], ROOTS[n]
    proof = inclusion_proof(LEAVES, i, n)
    assert proof == inclusion_proof(LEAVES[:n], i)
    assert verify_inclusion(leaf, i, n, proof, root)

    for altered in _mutations(proof, data):
        assert not verify_inclusion(leaf, i, n, altered, root)
    other = data.draw(st.integers(0, MAX + 5).filter(lambda j: j != i), label="wrong_index")
    assert not verify_inclusion(leaf, other, n, proof, root)
    assert not verify_inclusion(LEAVES[(i + 1) % MAX], i, n, proof, root)
    wrong_root = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != root))
    assert not verify_inclusion(leaf, i, n, proof, wrong_root)
    # A path alone does not commit to the size (the checkpoint binding size to root
    # does), so a wrong size is tested against the root a tree of that size really has.
    wrong_n = data.draw(st.integers(1, MAX).filter(lambda m: m != n), label="wrong_size")
    assert not verify_inclusion(leaf, i, wrong_n, proof, ROOTS[wrong_n])


@settings(max_examples=300)
@given(st.data())
def test_consistency_proofs_verify_and_tampering_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, MAX), label="new_size")
    m = data.draw(st.integers(1, n), label="old_size")
    proof = consistency_proof(LEAVES, m, n)
    assert verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)
    if m == n:
        assert proof == []
        return

    for altered in _mutations(proof, data):
        assert not verify_consistency(m, n, ROOTS[m], ROOTS[n], altered)
    assert not verify_consistency(m, n, ROOTS[m], ROOTS[n], [])
    wrong_m = data.draw(st.integers(1, n).filter(lambda k: k != m), label="wrong_old")
    assert not verify_consistency(wrong_m, n, ROOTS[wrong_m], ROOTS[n], proof)
    wrong_n = data.draw(st.integers(m, MAX).filter(lambda k: k != n), label="wrong_new")
    assert not verify_consistency(m, wrong_n, ROOTS[m], ROOTS[wrong_n], proof)
    assert not verify_consistency(m, n, ROOTS[m], ROOTS[n - 1], proof)
    assert not verify_consistency(m, n, ROOTS[m - 1], ROOTS[n], proof)


def test_degenerate_consistency() -> None:
    assert consistency_proof(LEAVES, 0, 10) == []
    assert consistency_proof(LEAVES, 7, 7) == []
    assert verify_consistency(0, 10, EMPTY_ROOT, ROOTS[10], [])
    assert not verify_consistency(0, 10, ROOTS[1], ROOTS[10], [])
    assert not verify_consistency(0, 10, EMPTY_ROOT, ROOTS[10], [LEAVES[0]])
    assert verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])
    assert not verify_consistency(7, 7, ROOTS[7], ROOTS[8], [])
    assert not verify_consistency(7, 7, ROOTS[7], ROOTS[7], [LEAVES[0]])
    assert not verify_consistency(8, 7, ROOTS[8], ROOTS[7], consistency_proof(LEAVES, 7, 8))


def test_single_leaf_tree() -> None:
    assert inclusion_proof(LEAVES, 0, 1) == []
    assert verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    assert not verify_inclusion(LEAVES[0], 0, 1, [LEAVES[1]], LEAVES[0])


@pytest.mark.parametrize(
    "args",
    [
        (LEAVES[0], 0, 2, "not a list", ROOTS[2]),
        (LEAVES[0], 0, 2, [b"short"], ROOTS[2]),
        (LEAVES[0], 0, 2, [LEAVES[1].hex()], ROOTS[2]),
        (LEAVES[0][:31], 0, 2, [LEAVES[1]], ROOTS[2]),
        (LEAVES[0], 0, 2, [LEAVES[1]], ROOTS[2][:31]),
        (LEAVES[0], -1, 2, [LEAVES[1]], ROOTS[2]),
        (LEAVES[0], 2, 2, [LEAVES[1]], ROOTS[2]),
        (LEAVES[0], 0, 0, [], EMPTY_ROOT),
        (LEAVES[0], "0", 2, [LEAVES[1]], ROOTS[2]),
        (LEAVES[0], True, 2, [LEAVES[1]], ROOTS[2]),
        (None, 0, 2, [LEAVES[1]], ROOTS[2]),
        (LEAVES[0], 0, 2, [LEAVES[1]] * 100, ROOTS[2]),
    ],
)
def test_verify_inclusion_rejects_malformed_input_without_raising(args: tuple[Any, ...]) -> None:
    assert verify_inclusion(*args) is False


@pytest.mark.parametrize(
    "args",
    [
        (3, 5, ROOTS[3], ROOTS[5], "nope"),
        (3, 5, ROOTS[3], ROOTS[5], [b"x" * 31]),
        (3, 5, ROOTS[3][:31], ROOTS[5], consistency_proof(LEAVES, 3, 5)),
        (3, 5, ROOTS[3], None, consistency_proof(LEAVES, 3, 5)),
        (-1, 5, ROOTS[3], ROOTS[5], consistency_proof(LEAVES, 3, 5)),
        (3, 5.0, ROOTS[3], ROOTS[5], consistency_proof(LEAVES, 3, 5)),
        (3, 5, ROOTS[3], ROOTS[5], consistency_proof(LEAVES, 3, 5) * 40),
    ],
)
def test_verify_consistency_rejects_malformed_input_without_raising(
    args: tuple[Any, ...],
) -> None:
    assert verify_consistency(*args) is False


def test_impossible_arguments_raise() -> None:
    with pytest.raises(ValueError, match="outside a tree of size 5"):
        inclusion_proof(LEAVES[:5], 5)
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(LEAVES[:5], -1)
    with pytest.raises(ValueError, match="exceeds"):
        inclusion_proof(LEAVES[:5], 0, 6)
    with pytest.raises(ValueError, match="larger than"):
        consistency_proof(LEAVES, 6, 5)
    with pytest.raises(ValueError, match="exceeds"):
        consistency_proof(LEAVES[:5], 2, 6)
    with pytest.raises(ValueError, match="non-negative"):
        consistency_proof(LEAVES, -1, 5)
    with pytest.raises(ValueError, match="leaf hash 1"):
        root_from_leaf_hashes([LEAVES[0], b"short"])
    with pytest.raises(ValueError, match="leaf hash"):
        MerkleAccumulator().append(b"short")


def test_accumulator_equals_batch_root_at_every_size() -> None:
    acc = MerkleAccumulator()
    assert acc.root() == EMPTY_ROOT
    for n, h in enumerate(LEAVES, start=1):
        acc.append(h)
        assert acc.size == n
        assert acc.root() == ROOTS[n]
        assert len(acc.state().hashes) == n.bit_count()


@given(st.integers(0, MAX), st.integers(0, MAX))
def test_accumulator_state_round_trips_and_resumes(split: int, end: int) -> None:
    split, end = min(split, end), max(split, end)
    first = MerkleAccumulator()
    first.extend(LEAVES[:split])
    state = AccumulatorState.from_json_dict(first.state().to_json_dict())
    assert state == first.state()
    resumed = MerkleAccumulator(state)
    resumed.extend(LEAVES[split:end])
    assert resumed.size == end
    assert resumed.root() == ROOTS[end]


def test_accumulator_state_is_validated() -> None:
    with pytest.raises(ValueError, match="needs 2 frontier hashes"):
        AccumulatorState(size=3, hashes=(LEAVES[0],))
    with pytest.raises(ValueError, match="32-byte"):
        AccumulatorState(size=1, hashes=(b"x",))
    with pytest.raises(ValueError, match="malformed"):
        AccumulatorState.from_json_dict({"size": 1, "hashes": ["zz"]})


def test_large_tree_agrees_with_accumulator() -> None:
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(100_003)]
    acc = MerkleAccumulator()
    acc.extend(hashes)
    root = root_from_leaf_hashes(hashes)
    assert acc.root() == root
    for index in (0, 65_535, 65_536, 100_002):
        proof = inclusion_proof(hashes, index)
        assert verify_inclusion(hashes[index], index, len(hashes), proof, root)
    old_root = root_from_leaf_hashes(hashes[:77_777])
    proof = consistency_proof(hashes, 77_777, len(hashes))
    assert verify_consistency(77_777, len(hashes), old_root, root, proof)
