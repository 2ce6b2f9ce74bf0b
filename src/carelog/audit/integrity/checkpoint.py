"""Signed, chained checkpoints over an organisation's audit tree, and the keys that sign them.

A checkpoint commits to (org, tree size, root hash, time, previous checkpoint) under an
Ed25519 key, like a CloudTrail digest file: each one names its predecessor's hash, so
deleting or rewriting history breaks the chain even for someone who holds only the
public keys. The exact byte formats are specified in docs/integrity.md.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from carelog.audit.integrity.canonical import canonical_bytes, format_timestamp
from carelog.audit.integrity.merkle import HASH_SIZE

__all__ = [
    "CHECKPOINT_TYPE",
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "SignedCheckpoint",
    "SigningKeyring",
    "VerifyingKeyring",
    "derive_key_id",
    "generate_key",
]

CHECKPOINT_VERSION = 1
# Inside the signed bytes so a checkpoint signature can never be replayed as a
# signature over some other carelog document that happens to share field names.
CHECKPOINT_TYPE = "carelog.audit.checkpoint"
SIGNATURE_SIZE = 64
SEED_SIZE = 32

# ':' and ',' separate entries in the key-list environment variable, so ids exclude them.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_key_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"key id must match {_KEY_ID.pattern}, got {key_id!r}")
    return key_id


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64; the message never echoes the input, which may be secret."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    org_id: str
    tree_size: int
    root_hash: bytes
    issued_at: datetime
    previous_hash: bytes | None
    key_id: str
    version: int = CHECKPOINT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.org_id, str) or not self.org_id:
            raise ValueError("org_id must be a non-empty string")
        if isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int):
            raise ValueError(f"tree_size must be an int, got {self.tree_size!r}")
        if self.tree_size < 0:
            raise ValueError(f"tree_size must be non-negative, got {self.tree_size}")
        for name in ("root_hash", "previous_hash"):
            value = getattr(self, name)
            if value is None and name == "previous_hash":
                continue
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ValueError(f"{name} must be {HASH_SIZE} bytes")
        if not isinstance(self.issued_at, datetime):
            raise ValueError("issued_at must be a datetime")
        format_timestamp(self.issued_at)  # rejects naive datetimes
        _check_key_id(self.key_id)
        if self.version != CHECKPOINT_VERSION:
            raise ValueError(f"unsupported checkpoint version {self.version!r}")

    def to_json_dict(self) -> dict[str, Any]:
        """Hashes as lowercase hex, time as the canonical UTC timestamp; ``v`` is the version."""
        return {
            "v": self.version,
            "type": CHECKPOINT_TYPE,
            "org_id": self.org_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "issued_at": format_timestamp(self.issued_at),
            "previous_hash": None if self.previous_hash is None else self.previous_hash.hex(),
            "key_id": self.key_id,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        try:
            if data["type"] != CHECKPOINT_TYPE:
                raise ValueError(f"not a checkpoint: type {data['type']!r}")
            previous = data["previous_hash"]
            return cls(
                org_id=data["org_id"],
                tree_size=data["tree_size"],
                root_hash=bytes.fromhex(data["root_hash"]),
                issued_at=datetime.fromisoformat(data["issued_at"]),
                previous_hash=None if previous is None else bytes.fromhex(previous),
                key_id=data["key_id"],
                version=data["v"],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed checkpoint: {exc!r}") from None

    def signed_bytes(self) -> bytes:
        """Exactly the bytes the Ed25519 signature covers: the canonical JSON form."""
        document = self.to_json_dict()
        version = document.pop("v")
        return canonical_bytes(document, version)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise ValueError(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes")

    def checkpoint_hash(self) -> bytes:
        """Names this checkpoint in its successor's ``previous_hash``.

        It covers the signature too, so the chain also pins which signature was issued.
        The fixed signature length keeps the concatenation unambiguous.
        """
        return sha256(self.checkpoint.signed_bytes() + self.signature).digest()

    def to_json_dict(self) -> dict[str, Any]:
        """The checkpoint's JSON plus the signature in standard, padded base64."""
        return {
            "checkpoint": self.checkpoint.to_json_dict(),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> SignedCheckpoint:
        try:
            checkpoint = Checkpoint.from_json_dict(data["checkpoint"])
            signature = _b64decode(data["signature"], "signature")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed signed checkpoint: {exc!r}") from None
        return cls(checkpoint=checkpoint, signature=signature)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def derive_key_id(public_key: Ed25519PublicKey) -> str:
    """A stable id for keys configured without one: a short fingerprint of the public key."""
    return "ed25519-" + sha256(_raw_public(public_key)).hexdigest()[:16]


def generate_key() -> tuple[str, str]:
    """A new (key_id, base64 seed) pair, in the form the key-list variable expects."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return derive_key_id(private.public_key()), base64.b64encode(seed).decode("ascii")


def _private_from_seed(seed_b64: str, what: str) -> Ed25519PrivateKey:
    seed = _b64decode(seed_b64, what)
    if len(seed) != SEED_SIZE:
        raise ValueError(f"{what} must decode to {SEED_SIZE} bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public_from_text(text: str, what: str) -> Ed25519PublicKey:
    if text.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except ValueError:
            raise ValueError(f"{what} is not a valid PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{what} is not an Ed25519 key")
        return key
    raw = _b64decode(text, what)
    if len(raw) != SEED_SIZE:
        raise ValueError(f"{what} must decode to {SEED_SIZE} bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


class VerifyingKeyring:
    """Public keys only: what auditors and the verify command need, and all they get."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = {_check_key_id(k): v for k, v in keys.items()}

    @classmethod
    def from_public_keys(cls, keys: Mapping[str, str]) -> VerifyingKeyring:
        """Accepts raw base64 (as ``SigningKeyring.public_keys`` emits) or PEM per key id."""
        return cls({k: _public_from_text(v, f"public key {k!r}") for k, v in keys.items()})

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, signed: SignedCheckpoint) -> bool:
        """False for any failure, including an unknown key id; never raises on bad input."""
        try:
            key = self._keys.get(signed.checkpoint.key_id)
            if key is None:
                return False
            key.verify(signed.signature, signed.checkpoint.signed_bytes())
        except (InvalidSignature, ValueError, TypeError, AttributeError):
            return False
        return True

    def __repr__(self) -> str:
        return f"VerifyingKeyring(key_ids={sorted(self._keys)})"


class SigningKeyring:
    """One active signing key plus the public halves of retired ones.

    Retired private keys are dropped on load: after rotation nothing should be able to
    sign as an old key, but checkpoints it signed must still verify.
    """

    __slots__ = ("_active", "_active_id", "_retired")

    def __init__(
        self,
        active_id: str,
        active: Ed25519PrivateKey,
        retired: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        self._active_id = _check_key_id(active_id)
        self._active = active
        self._retired = {_check_key_id(k): v for k, v in (retired or {}).items()}
        if self._active_id in self._retired:
            raise ValueError(f"key id {active_id!r} is both active and retired")

    @classmethod
    def from_seed(cls, seed_b64: str, key_id: str | None = None) -> SigningKeyring:
        private = _private_from_seed(seed_b64, "signing key seed")
        return cls(key_id or derive_key_id(private.public_key()), private)

    @classmethod
    def from_pem(
        cls, pem: str | bytes, key_id: str | None = None, password: bytes | None = None
    ) -> SigningKeyring:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            private = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError):
            raise ValueError("signing key is not a valid PEM private key") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError("signing key is not an Ed25519 key")
        return cls(key_id or derive_key_id(private.public_key()), private)

    @classmethod
    def from_env_value(cls, value: str) -> SigningKeyring:
        """Parse ``"k2026:SEED,k2025:SEED"``: first entry active, the rest retired.

        An entry without ``id:`` gets a derived id. Errors name the entry by position
        only, because the value is secret.
        """
        entries = [e.strip() for e in value.split(",") if e.strip()]
        if not entries:
            raise ValueError("the signing key list is empty")
        keys: list[tuple[str, Ed25519PrivateKey]] = []
        for position, entry in enumerate(entries, start=1):
            key_id, sep, seed = entry.rpartition(":")
            private = _private_from_seed(seed, f"signing key entry {position}")
            keys.append((key_id if sep else derive_key_id(private.public_key()), private))
        ids = [k for k, _ in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("the signing key list repeats a key id")
        (active_id, active), *retired = keys
        return cls(active_id, active, {k: p.public_key() for k, p in retired})

    @property
    def active_key_id(self) -> str:
        return self._active_id

    def sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        if checkpoint.key_id != self._active_id:
            raise ValueError(
                f"checkpoint names key {checkpoint.key_id!r} but the active key is "
                f"{self._active_id!r}"
            )
        return SignedCheckpoint(checkpoint, self._active.sign(checkpoint.signed_bytes()))

    def sign_bytes(self, data: bytes) -> str:
        """A detached signature (standard base64) by the active key, for signed documents
        other than checkpoints (erasure certificates); verify with :meth:`public_keys`."""
        return base64.b64encode(self._active.sign(data)).decode("ascii")

    def public_keys(self) -> dict[str, str]:
        """Every key id (active and retired) to its raw public key in standard base64."""
        keys = {self._active_id: self._active.public_key(), **self._retired}
        return {k: base64.b64encode(_raw_public(v)).decode("ascii") for k, v in keys.items()}

    def verifying_keyring(self) -> VerifyingKeyring:
        return VerifyingKeyring({self._active_id: self._active.public_key(), **self._retired})

    def __repr__(self) -> str:
        return f"SigningKeyring(active={self._active_id!r}, retired={sorted(self._retired)})"
