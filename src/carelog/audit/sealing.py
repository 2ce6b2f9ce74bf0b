"""Personal values sealed under a data subject's key: what crypto-shredding rests on.

A personal value of an event (a field the catalog classifies as personal or PHI) about a known
data subject is stored as one string::

    sealed:aes256gcm:<key id>:<equality token>:<nonce ‖ ciphertext ‖ tag, base64url>

* the ciphertext is AES-256-GCM under a key derived from the subject's data key, with the
  organization, the event id and the value's path inside the event as associated data, so a
  sealed value copied into another event, field or tenant fails to open;
* the equality token is a keyed hash (HMAC-SHA256, 128 bits) under another key derived from
  the same data key: two events about the same subject can still be compared for "same value",
  but once the data key is destroyed nobody can confirm a guessed value against it.

The Merkle leaf of the event commits to this string. Destroying the data key therefore erases
the value without changing a leaf, a root, a checkpoint or a proof (docs/erasure.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEAL_PREFIX = "sealed:aes256gcm:"
#: Stored instead of a personal value about a subject who is already erased.
ERASED_VALUE = "erased:subject"
_NONCE = 12
_AAD = "carelog.audit.sealed.v1"


@dataclass(frozen=True)
class SubjectKey:
    """A subject's unwrapped data key (never stored or logged in this form)."""

    subject_id: str
    key_id: str
    data_key: bytes

    def __repr__(self) -> str:  # never the key bytes
        return f"SubjectKey(subject_id={self.subject_id!r}, key_id={self.key_id!r})"

    def _derive(self, label: bytes) -> bytes:
        return hmac.new(self.data_key, label, hashlib.sha256).digest()

    @property
    def encryption_key(self) -> bytes:
        return self._derive(b"carelog.audit.enc.v1")

    @property
    def equality_key(self) -> bytes:
        return self._derive(b"carelog.audit.eq.v1")


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)


def _aad(org_id: uuid.UUID, event_id: uuid.UUID, path: str) -> bytes:
    return f"{_AAD}|{org_id}|{event_id}|{path}".encode()


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEAL_PREFIX)


@dataclass(frozen=True)
class Sealer:
    """Seals the personal values of one event (its identity is the associated data)."""

    key: SubjectKey
    org_id: uuid.UUID
    event_id: uuid.UUID

    def equality_token(self, value: Any) -> str:
        return hmac.new(self.key.equality_key, _canonical(value), hashlib.sha256).hexdigest()[:32]

    def seal(self, value: Any, path: str) -> str:
        if is_sealed(value):
            return str(value)
        nonce = os.urandom(_NONCE)
        aad = _aad(self.org_id, self.event_id, path)
        blob = nonce + AESGCM(self.key.encryption_key).encrypt(nonce, _canonical(value), aad)
        text = base64.urlsafe_b64encode(blob).decode().rstrip("=")
        return f"{SEAL_PREFIX}{self.key.key_id}:{self.equality_token(value)}:{text}"


@dataclass(frozen=True)
class SealedValue:
    key_id: str
    equality_token: str
    blob: bytes


def parse_sealed(value: str) -> SealedValue:
    body = value[len(SEAL_PREFIX) :]
    key_id, eq, text = body.split(":", 2)
    return SealedValue(key_id, eq, base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def open_sealed(
    value: str, key: SubjectKey, org_id: uuid.UUID, event_id: uuid.UUID, path: str
) -> Any:
    """The plaintext of a sealed value; ``ValueError`` if it was not sealed for this place."""
    sealed = parse_sealed(value)
    if sealed.key_id != key.key_id:
        raise ValueError(f"sealed under key {sealed.key_id}, not {key.key_id}")
    nonce, ct = sealed.blob[:_NONCE], sealed.blob[_NONCE:]
    try:
        plain = AESGCM(key.encryption_key).decrypt(nonce, ct, _aad(org_id, event_id, path))
    except InvalidTag:
        raise ValueError("the sealed value does not belong to this event and field") from None
    return orjson.loads(plain)


def open_event_values(
    value: Any, key: SubjectKey | None, org_id: uuid.UUID, event_id: uuid.UUID, path: str
) -> Any:
    """A stored JSON value with every sealed part opened, or shown as ``"[erased]"``.

    ``key`` None means the subject's key is destroyed (or was never readable here).
    """
    if isinstance(value, dict):
        return {
            k: open_event_values(v, key, org_id, event_id, f"{path}/{k}") for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            open_event_values(v, key, org_id, event_id, f"{path}/{i}") for i, v in enumerate(value)
        ]
    if isinstance(value, str) and (is_sealed(value) or value == ERASED_VALUE):
        if key is None or value == ERASED_VALUE:
            return "[erased]"
        try:
            return open_sealed(value, key, org_id, event_id, path)
        except ValueError:
            return "[erased]"
    return value


ERASED_DISPLAY = "[erased]"


def present(value: Any, erased: bool) -> Any:
    """A stored value as exports and the viewer show it: sealed values of an erased subject
    (and values stored as already erased) become ``"[erased]"``; the rest stays as stored."""
    if isinstance(value, dict):
        return {k: present(v, erased) for k, v in value.items()}
    if isinstance(value, list):
        return [present(v, erased) for v in value]
    if value == ERASED_VALUE or (erased and is_sealed(value)):
        return ERASED_DISPLAY
    return value


async def erased_subjects(session: Any, org_id: uuid.UUID, subject_ids: Any) -> set[str]:
    """Which of these subjects are erased (``data_subjects.erased_at``, readable by admins)."""
    import sqlalchemy as sa

    wanted = sorted({s for s in subject_ids if s})
    if not wanted:
        return set()
    rows = await session.execute(
        sa.text(
            "select subject_id from data_subjects where org_id = :o and erased_at is not null"
            " and subject_id = any(:s)"
        ),
        {"o": org_id, "s": wanted},
    )
    return {str(r) for r in rows.scalars()}
