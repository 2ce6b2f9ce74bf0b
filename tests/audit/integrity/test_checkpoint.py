"""Checkpoint encoding, Ed25519 signing, chaining and key rotation."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from carelog.audit.integrity.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    SigningKeyring,
    VerifyingKeyring,
    derive_key_id,
    generate_key,
)
from carelog.audit.integrity.merkle import EMPTY_ROOT, leaf_hash

DOC = Path(__file__).resolve().parents[3] / "docs" / "integrity.md"

# RFC 8032 §7.1 TEST 1: pins the meaning of "raw 32-byte seed" to the standard's.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SEED_B64 = base64.b64encode(RFC8032_SEED).decode()

# The worked example in docs/integrity.md (Ed25519 signatures are deterministic).
EXAMPLE_SIGNED_BYTES = (
    b'{"issued_at":"2026-03-01T12:35:00.000000Z","key_id":"rfc8032-test1",'
    b'"org_id":"6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e","previous_hash":null,'
    b'"root_hash":"5d5bd85451767df2c56df70f08c829cd5f7e3c41d512e2bba8e4cb3a6836332c",'
    b'"tree_size":1,"type":"carelog.audit.checkpoint","v":1}'
)
EXAMPLE_SIGNATURE = (
    "a5fb056892797e5cb8d69664c071b19bd0b02382069c1255c0bf6d92f8f64445"
    "3d26108fcbeb8e568052f97c8f50ec6254f843218edd01cdf095e30445bd6009"
)
EXAMPLE_CHECKPOINT_HASH = "4ba525d3ccd0243ca2c210153c489861f5d392abaaf9a6ef8f20949ad2f8a418"


def seed_b64() -> str:
    return generate_key()[1]


def make(key_id: str = "k", **changes: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "org_id": "org-1",
        "tree_size": 10,
        "root_hash": leaf_hash(b"root"),
        "issued_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        "previous_hash": leaf_hash(b"prev"),
        "key_id": key_id,
    }
    fields.update(changes)
    return Checkpoint(**fields)


def test_rfc8032_seed_and_documented_example() -> None:
    ring = SigningKeyring.from_env_value(f"rfc8032-test1:{RFC8032_SEED_B64}")
    assert base64.b64decode(ring.public_keys()["rfc8032-test1"]).hex() == RFC8032_PUBLIC
    checkpoint = Checkpoint(
        org_id="6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e",
        tree_size=1,
        root_hash=bytes.fromhex("5d5bd85451767df2c56df70f08c829cd5f7e3c41d512e2bba8e4cb3a6836332c"),
        issued_at=datetime(2026, 3, 1, 12, 35, tzinfo=UTC),
        previous_hash=None,
        key_id="rfc8032-test1",
    )
    signed = ring.sign(checkpoint)
    assert checkpoint.signed_bytes() == EXAMPLE_SIGNED_BYTES
    assert signed.signature.hex() == EXAMPLE_SIGNATURE
    assert signed.checkpoint_hash().hex() == EXAMPLE_CHECKPOINT_HASH
    assert (
        signed.checkpoint_hash() == hashlib.sha256(EXAMPLE_SIGNED_BYTES + signed.signature).digest()
    )
    doc = DOC.read_text(encoding="utf-8")
    for text in (EXAMPLE_SIGNED_BYTES.decode(), EXAMPLE_SIGNATURE, EXAMPLE_CHECKPOINT_HASH):
        assert text in doc


def test_sign_and_verify() -> None:
    ring = SigningKeyring.from_seed(seed_b64(), key_id="k1")
    signed = ring.sign(make("k1"))
    assert ring.verifying_keyring().verify(signed)
    assert VerifyingKeyring.from_public_keys(ring.public_keys()).verify(signed)


@pytest.mark.parametrize(
    "change",
    [
        {"org_id": "org-2"},
        {"tree_size": 11},
        {"root_hash": leaf_hash(b"other")},
        {"issued_at": datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)},
        {"previous_hash": None},
        {"previous_hash": leaf_hash(b"other")},
        {"key_id": "k2"},
    ],
)
def test_any_field_change_breaks_the_signature(change: dict[str, Any]) -> None:
    ring = SigningKeyring.from_env_value(f"k1:{seed_b64()},k2:{seed_b64()}")
    signed = ring.sign(make("k1"))
    forged = SignedCheckpoint(dataclasses.replace(signed.checkpoint, **change), signed.signature)
    assert not ring.verifying_keyring().verify(forged)


@given(st.integers(0, 63), st.integers(0, 7))
def test_any_signature_bit_flip_fails(byte: int, bit: int) -> None:
    ring = SigningKeyring.from_seed(RFC8032_SEED_B64, key_id="k1")
    signed = ring.sign(make("k1"))
    sig = bytearray(signed.signature)
    sig[byte] ^= 1 << bit
    assert not ring.verifying_keyring().verify(SignedCheckpoint(signed.checkpoint, bytes(sig)))


def test_rotation_keeps_old_checkpoints_verifiable() -> None:
    old_seed, new_seed = seed_b64(), seed_b64()
    before = SigningKeyring.from_env_value(f"k2025:{old_seed}")
    first = before.sign(make("k2025", previous_hash=None))

    after = SigningKeyring.from_env_value(f"k2026:{new_seed}, k2025:{old_seed}")
    assert after.active_key_id == "k2026"
    second = after.sign(make("k2026", tree_size=20, previous_hash=first.checkpoint_hash()))

    verifier = VerifyingKeyring.from_public_keys(after.public_keys())
    assert verifier.key_ids == {"k2025", "k2026"}
    assert verifier.verify(first)
    assert verifier.verify(second)
    assert second.checkpoint.previous_hash == first.checkpoint_hash()
    with pytest.raises(ValueError, match="active key is 'k2026'"):
        after.sign(make("k2025"))  # retired keys verify but never sign again


def test_wrong_or_unknown_key_id_fails() -> None:
    a = SigningKeyring.from_seed(seed_b64(), key_id="a")
    b = SigningKeyring.from_seed(seed_b64(), key_id="b")
    signed = a.sign(make("a"))
    assert not b.verifying_keyring().verify(signed)  # unknown id
    # A verifier that maps id "a" to someone else's key must not accept it either.
    impostor = VerifyingKeyring({"a": b.verifying_keyring()._keys["b"]})
    assert not impostor.verify(signed)


def test_checkpoint_hash_chains_and_covers_signature() -> None:
    ring = SigningKeyring.from_seed(seed_b64(), key_id="k")
    signed = ring.sign(make("k"))
    expected = hashlib.sha256(signed.checkpoint.signed_bytes() + signed.signature).digest()
    assert signed.checkpoint_hash() == expected
    other_sig = SignedCheckpoint(signed.checkpoint, bytes(64))
    assert other_sig.checkpoint_hash() != signed.checkpoint_hash()


def test_json_round_trip() -> None:
    ring = SigningKeyring.from_seed(seed_b64(), key_id="k")
    for checkpoint in (make("k"), make("k", previous_hash=None, tree_size=0, root_hash=EMPTY_ROOT)):
        signed = ring.sign(checkpoint)
        wire = json.loads(json.dumps(signed.to_json_dict()))
        assert wire["checkpoint"]["root_hash"] == checkpoint.root_hash.hex()
        assert base64.b64decode(wire["signature"]) == signed.signature
        back = SignedCheckpoint.from_json_dict(wire)
        assert back == signed
        assert back.checkpoint.signed_bytes() == checkpoint.signed_bytes()
        assert ring.verifying_keyring().verify(back)


def test_issued_at_in_any_zone_signs_the_same_instant() -> None:
    utc = make("k", issued_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    cet = make("k", issued_at=datetime(2026, 3, 1, 13, tzinfo=timezone(timedelta(hours=1))))
    assert utc.signed_bytes() == cet.signed_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"org_id": ""}, "org_id"),
        ({"tree_size": -1}, "non-negative"),
        ({"tree_size": True}, "tree_size"),
        ({"root_hash": b"short"}, "root_hash"),
        ({"previous_hash": "00" * 32}, "previous_hash"),
        ({"issued_at": datetime(2026, 1, 1)}, "naive"),
        ({"key_id": "a:b"}, "key id"),
        ({"key_id": ""}, "key id"),
        ({"version": 2}, "unsupported"),
    ],
)
def test_checkpoint_validation(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**change)


def test_malformed_json_raises_value_error() -> None:
    good = SigningKeyring.from_seed(seed_b64(), key_id="k").sign(make("k")).to_json_dict()
    for broken in (
        {},
        {"checkpoint": good["checkpoint"], "signature": "not base64!"},
        {"checkpoint": good["checkpoint"], "signature": base64.b64encode(b"x" * 63).decode()},
        {"checkpoint": {**good["checkpoint"], "type": "other"}, "signature": good["signature"]},
        {"checkpoint": {**good["checkpoint"], "root_hash": "zz"}, "signature": good["signature"]},
        {"checkpoint": {**good["checkpoint"], "tree_size": None}, "signature": good["signature"]},
    ):
        with pytest.raises(ValueError):
            SignedCheckpoint.from_json_dict(broken)


def test_keys_from_pem_and_pem_public_keys() -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ring = SigningKeyring.from_pem(pem)
    assert ring.active_key_id == derive_key_id(private.public_key())
    signed = ring.sign(make(ring.active_key_id))
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = VerifyingKeyring.from_public_keys({ring.active_key_id: public_pem.decode()})
    assert verifier.verify(signed)
    with pytest.raises(ValueError, match="PEM"):
        SigningKeyring.from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_generate_key_and_derived_ids() -> None:
    key_id, seed = generate_key()
    assert len(base64.b64decode(seed)) == 32
    ring = SigningKeyring.from_env_value(seed)  # no id given: derived
    assert ring.active_key_id == key_id
    assert key_id.startswith("ed25519-")


def test_private_material_never_appears_in_repr_or_errors() -> None:
    seed = seed_b64()
    ring = SigningKeyring.from_env_value(f"k2:{seed},k1:{seed_b64()}")
    assert seed not in repr(ring)
    assert "k2" in repr(ring)
    bad = "k1:" + seed[:-4] + "!!!!"
    with pytest.raises(ValueError, match="entry 1") as excinfo:
        SigningKeyring.from_env_value(bad)
    assert seed[:-4] not in str(excinfo.value)
    short = base64.b64encode(b"x" * 31).decode()
    with pytest.raises(ValueError, match="32 bytes") as excinfo:
        SigningKeyring.from_env_value(f"k1:{seed},k0:{short}")
    assert short not in str(excinfo.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "empty"), (" , ", "empty"), ("k1:{s},k1:{t}", "repeats"), ("bad id:{s}", "key id")],
)
def test_env_value_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SigningKeyring.from_env_value(value.format(s=seed_b64(), t=seed_b64()))


def test_verify_never_raises_on_garbage() -> None:
    ring = SigningKeyring.from_seed(seed_b64(), key_id="k").verifying_keyring()
    assert ring.verify("not a checkpoint") is False  # type: ignore[arg-type]
