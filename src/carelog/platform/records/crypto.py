"""AES-256-GCM encryption of medical record content (PHI), bound to the row it belongs to.

Why not the legacy platform's scheme (see docs/migrating.md): it used no associated data, so a
ciphertext could be copied onto another patient's record and still decrypt; it carried the
author's id in clear inside the envelope; and the org id given to decrypt was only logged. Here:

* Keys come from ``CARELOG_RECORD_KEYS`` = ``"kid1:BASE64KEY,kid2:BASE64KEY"`` (32-byte keys,
  standard or URL-safe base64). The FIRST key is the active one (new encryptions); the others
  are retired keys kept only so existing rows still decrypt until ``carelog keys rotate`` has
  re-encrypted them. Outside production, when the variable is unset, one key is generated and
  kept in ``<CARELOG_DATA_DIR>/record-keys`` (mode 0600, same text format) so a restart can
  still read yesterday's records. Production refuses to start without the variable.
* Every encryption uses a fresh 12-byte random nonce and associated data naming the record id,
  the meeting id and the organization id. A ciphertext moved to another row, meeting or tenant
  fails authentication instead of decrypting.
* The stored blob is ``v1.<nonce b64url>.<ciphertext+tag b64url>`` (no padding). The key id is
  deliberately NOT inside the blob: ``records.key_id`` is the single authoritative place (it is
  what rotation queries), and two copies could disagree. The ``v1`` prefix names the format and
  the associated-data layout, so a future format can coexist with old rows.
* Errors never contain plaintext, key bytes or ciphertext, only key ids and what to check.

``records.encryption_method`` is :data:`ENCRYPTION_METHOD` (``'aes256gcm'``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carelog.core.errors import CarelogError, ConfigurationError
from carelog.core.settings import Settings

ENV_VARIABLE = "CARELOG_RECORD_KEYS"
KEY_FILE_NAME = "record-keys"
ENCRYPTION_METHOD = "aes256gcm"
BLOB_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
_AAD_PREFIX = b"carelog.records.v1"
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

IdLike = uuid.UUID | str


class RecordDecryptionError(CarelogError):
    """A record could not be decrypted (unknown key, malformed blob, or failed authentication)."""


@dataclass(frozen=True)
class Sealed:
    """An encrypted value ready for ``records.key_id`` and ``records.vault_encrypted_content``."""

    key_id: str
    blob: str

    @property
    def encryption_method(self) -> str:
        return ENCRYPTION_METHOD


class RecordKeyring:
    """Key id → 32-byte AES key; the first key is active. Its repr never shows key bytes."""

    def __init__(self, entries: Iterable[tuple[str, bytes]], *, source: str = ENV_VARIABLE):
        keys: dict[str, bytes] = {}
        for key_id, key in entries:
            _check_key_id(key_id, source)
            if key_id in keys:
                raise ConfigurationError(
                    f"key id {key_id!r} appears twice",
                    field=source,
                    hint="give every key its own id",
                )
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"key {key_id!r} is {len(key)} bytes, AES-256 needs {KEY_BYTES}",
                    field=source,
                    hint="generate one with: python -c 'import os,base64;"
                    "print(base64.b64encode(os.urandom(32)).decode())'",
                )
            keys[key_id] = bytes(key)
        if not keys:
            raise ConfigurationError("no record encryption key given", field=source)
        self._keys = keys
        self._active = next(iter(keys))

    # ------------------------------------------------------------------ construction

    @classmethod
    def generate(cls, key_id: str | None = None) -> RecordKeyring:
        """A keyring with one fresh random key (development and tests)."""
        return cls([(key_id or f"dev-{secrets.token_hex(4)}", AESGCM.generate_key(bit_length=256))])

    @classmethod
    def parse(cls, text: str, *, source: str = ENV_VARIABLE) -> RecordKeyring:
        """Parse ``"kid1:BASE64,kid2:BASE64"`` (commas or newlines between entries)."""
        entries: list[tuple[str, bytes]] = []
        for raw in re.split(r"[,\n]", text):
            item = raw.strip()
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep or not key_id.strip() or not encoded.strip():
                raise ConfigurationError(
                    "expected entries like 'kid:BASE64KEY' separated by commas",
                    field=source,
                    hint="e.g. CARELOG_RECORD_KEYS='k2025:<base64 of 32 random bytes>'",
                )
            entries.append((key_id.strip(), _decode_key(key_id.strip(), encoded.strip(), source)))
        return cls(entries, source=source)

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordKeyring:
        """The keyring for this deployment: the variable, or (not in production) the dev file."""
        secret = settings.record_keys
        text = secret.get_secret_value().strip() if secret is not None else ""
        if text:
            return cls.parse(text)
        if settings.production:
            raise ConfigurationError(
                "production needs record encryption keys",
                field=ENV_VARIABLE,
                hint="set it to 'kid:BASE64KEY' (32 random bytes); keep retired keys after it",
            )
        return cls.load_or_create_dev_file(settings.data_dir / KEY_FILE_NAME)

    @classmethod
    def load_or_create_dev_file(cls, path: Path) -> RecordKeyring:
        """Reuse the development key file, or create it (0600) with one new key.

        Persisting matters: a key that changed on every start would make every record written
        before the restart undecryptable.
        """
        source = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls._read_key_file(path)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the development key file: {exc.strerror}", field=source
            ) from exc
        keyring = cls.generate(key_id=f"dev-{secrets.token_hex(4)}")
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(keyring.export_text() + "\n")
        return keyring

    @classmethod
    def _read_key_file(cls, path: Path) -> RecordKeyring:
        source = str(path)
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                "the record key file is readable by other users",
                field=source,
                hint=f"run: chmod 600 {path}",
            )
        return cls.parse(path.read_text(encoding="ascii"), source=source)

    def export_text(self) -> str:
        """The keyring in ``CARELOG_RECORD_KEYS`` format (secret: for the key file only)."""
        return ",".join(
            f"{kid}:{base64.b64encode(key).decode('ascii')}" for kid, key in self._keys.items()
        )

    # ------------------------------------------------------------------ inspection

    @property
    def active_key_id(self) -> str:
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:
        return f"RecordKeyring(active={self._active!r}, key_ids={list(self._keys)!r})"

    # ------------------------------------------------------------------ operations

    def encrypt(
        self, plaintext: str, *, record_id: IdLike, meeting_id: IdLike, org_id: IdLike
    ) -> Sealed:
        """Encrypt under the active key, bound to (record, meeting, org)."""
        aad = _associated_data(record_id, meeting_id, org_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._keys[self._active]).encrypt(nonce, plaintext.encode("utf-8"), aad)
        return Sealed(self._active, f"{BLOB_VERSION}.{_b64url(nonce)}.{_b64url(sealed)}")

    def decrypt(
        self, key_id: str, blob: str, *, record_id: IdLike, meeting_id: IdLike, org_id: IdLike
    ) -> str:
        """Decrypt a blob written by :meth:`encrypt` for exactly this record, meeting and org."""
        key = self._keys.get(key_id)
        if key is None:
            raise RecordDecryptionError(
                f"unknown record key id {key_id!r}",
                hint=f"keep retired keys in {ENV_VARIABLE} until every record is rotated",
            )
        nonce, ciphertext = _split_blob(blob)
        aad = _associated_data(record_id, meeting_id, org_id)
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise RecordDecryptionError(
                "record content failed authentication",
                hint="wrong key, altered content, or content copied from another record",
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordDecryptionError("record content is not UTF-8 text") from None

    def rotate(
        self, key_id: str, blob: str, *, record_id: IdLike, meeting_id: IdLike, org_id: IdLike
    ) -> Sealed:
        """Re-encrypt a value under the active key (decrypting with its old key first)."""
        ids = {"record_id": record_id, "meeting_id": meeting_id, "org_id": org_id}
        return self.encrypt(self.decrypt(key_id, blob, **ids), **ids)

    def needs_rotation(self, key_id: str) -> bool:
        return key_id != self._active


# ---------------------------------------------------------------------- helpers


def _check_key_id(key_id: str, source: str) -> None:
    if not _KEY_ID.match(key_id):
        raise ConfigurationError(
            f"invalid key id {key_id!r}",
            field=source,
            hint="use 1-64 letters, digits, '-' or '_', starting with a letter or digit",
        )


def _decode_key(key_id: str, encoded: str, source: str) -> bytes:
    normalized = encoded.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"key {key_id!r} is not valid base64", field=source, hint="encode 32 random bytes"
        ) from None


def _uuid_text(value: IdLike, name: str) -> bytes:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).encode()
    except ValueError:
        raise CarelogError(f"{name} must be a UUID", field=name) from None


def _associated_data(record_id: IdLike, meeting_id: IdLike, org_id: IdLike) -> bytes:
    return b"\x00".join(
        (
            _AAD_PREFIX,
            _uuid_text(record_id, "record_id"),
            _uuid_text(meeting_id, "meeting_id"),
            _uuid_text(org_id, "org_id"),
        )
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    standard = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)


def _split_blob(blob: str) -> tuple[bytes, bytes]:
    parts = blob.split(".")
    if len(parts) != 3 or parts[0] != BLOB_VERSION:
        raise RecordDecryptionError(
            "record content is not in a known format", hint=f"expected a {BLOB_VERSION} blob"
        )
    try:
        nonce, ciphertext = _b64url_decode(parts[1]), _b64url_decode(parts[2])
    except (binascii.Error, ValueError):
        raise RecordDecryptionError("record content is not valid base64") from None
    if len(nonce) != NONCE_BYTES or len(ciphertext) < 16:
        raise RecordDecryptionError("record content is truncated or malformed")
    return nonce, ciphertext


__all__ = [
    "ENCRYPTION_METHOD",
    "ENV_VARIABLE",
    "KEY_FILE_NAME",
    "RecordDecryptionError",
    "RecordKeyring",
    "Sealed",
]
