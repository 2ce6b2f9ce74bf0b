"""Per-subject audit data keys: created on first use, wrapped by a KEK, destroyed on erasure.

A data key is 32 random bytes, stored only wrapped (AES-256-GCM) by a key-encryption key from
``CARELOG_AUDIT_SUBJECT_KEKS`` (``kid:BASE64,...``; the first wraps new keys, the others are
kept so existing keys still unwrap until ``carelog subject rewrap`` has moved them). The wrap's
associated data names the organization, the subject and the key id, so a wrapped key copied to
another row does not unwrap. Destroying a key nulls ``wrapped_key``: from then on the sealed
values of that subject's events can be opened by nobody, and the row itself is the evidence of
when that happened.

Keys are read and created as a system actor pinned to the event's organization, in a short
transaction of their own, so a key exists (committed) before any event sealed under it can be.

A found key is kept in memory for :data:`CACHE_SECONDS`: that lookup (a transaction of four
round trips and an unwrap) was most of what ``log_audit_event`` cost for an event naming a
subject (``carelog bench audit``). A data key never changes while it exists, so the cache can
only be stale about a destruction: :meth:`SubjectKeyStore.destroy` forgets the key in every
store of this process at once; another process (a second worker, the CLI) may seal a few more
values under the destroyed key for at most :data:`CACHE_SECONDS`. Nobody can open those either
(the key is gone from the database and, within seconds, from memory), and exports and the
viewer present them as erased like every other sealed value of an erased subject.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import secrets
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carelog.audit.sealing import SubjectKey
from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings
from carelog.db.session import Scopes
from carelog.db.unit import Row, Unit

KEKS_VARIABLE = "CARELOG_AUDIT_SUBJECT_KEKS"
KEK_FILE_NAME = "audit-subject-keks"
KEY_ACTOR = "system:audit-subject-keys"
_KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_WRAP_AAD = "carelog.audit.subject-key.v1"


class KekRing:
    """Key-encryption keys by id; the first is active. Its repr never shows key bytes."""

    def __init__(self, entries: Iterable[tuple[str, bytes]]) -> None:
        keys: dict[str, bytes] = {}
        for kid, key in entries:
            if not _KID.match(kid) or kid in keys:
                raise ConfigurationError(f"invalid or repeated key id {kid!r}", field=KEKS_VARIABLE)
            if len(key) != 32:
                raise ConfigurationError(
                    f"key {kid!r} is {len(key)} bytes, AES-256 needs 32", field=KEKS_VARIABLE
                )
            keys[kid] = key
        if not keys:
            raise ConfigurationError("no key-encryption key given", field=KEKS_VARIABLE)
        self._keys = keys
        self.active_id = next(iter(keys))

    def __repr__(self) -> str:
        return f"KekRing(active={self.active_id!r}, key_ids={list(self._keys)!r})"

    @classmethod
    def parse(cls, text: str) -> KekRing:
        entries = []
        for item in (p.strip() for p in re.split(r"[,\n]", text)):
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            try:
                key = base64.b64decode(encoded.strip(), validate=True) if sep else b""
            except (binascii.Error, ValueError):
                key = b""
            if not sep or not key:
                raise ConfigurationError(
                    "expected entries like 'kid:BASE64KEY' separated by commas",
                    field=KEKS_VARIABLE,
                    hint="32 random bytes per key, standard base64",
                )
            entries.append((kid.strip(), key))
        return cls(entries)

    @classmethod
    def generate(cls, kid: str = "kek-dev") -> KekRing:
        return cls([(kid, os.urandom(32))])

    @classmethod
    def from_settings(cls, settings: Settings) -> KekRing:
        secret = settings.audit_subject_keks
        text = "" if secret is None else secret.get_secret_value().strip()
        if text:
            return cls.parse(text)
        if settings.production:
            raise ConfigurationError(
                "production needs key-encryption keys for subject data keys",
                field=KEKS_VARIABLE,
                hint="kid:<base64 of 32 random bytes>",
            )
        path = Path(settings.data_dir) / KEK_FILE_NAME
        if path.exists():
            return cls.parse(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        line = f"kek-{secrets.token_hex(4)}:{base64.b64encode(os.urandom(32)).decode()}\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return cls.parse(path.read_text())
        with os.fdopen(fd, "w") as handle:
            handle.write(line)
        return cls.parse(line)

    def _aad(self, org_id: uuid.UUID, subject_id: str, key_id: str) -> bytes:
        return f"{_WRAP_AAD}|{org_id}|{subject_id}|{key_id}".encode()

    def wrap(self, data_key: bytes, org_id: uuid.UUID, subject_id: str, key_id: str) -> str:
        nonce = os.urandom(12)
        aad = self._aad(org_id, subject_id, key_id)
        blob = nonce + AESGCM(self._keys[self.active_id]).encrypt(nonce, data_key, aad)
        return base64.b64encode(blob).decode()

    def unwrap(
        self, wrapped: str, kek_id: str, org_id: uuid.UUID, subject_id: str, key_id: str
    ) -> bytes:
        kek = self._keys.get(kek_id)
        if kek is None:
            raise ConfigurationError(
                f"subject key {key_id} is wrapped by {kek_id!r}, which is not configured",
                field=KEKS_VARIABLE,
                hint="keep retired key-encryption keys until `carelog subject rewrap` ran",
            )
        blob = base64.b64decode(wrapped)
        try:
            return AESGCM(kek).decrypt(blob[:12], blob[12:], self._aad(org_id, subject_id, key_id))
        except InvalidTag:
            raise ConfigurationError(
                f"subject key {key_id} does not unwrap under {kek_id!r}", field=KEKS_VARIABLE
            ) from None


@dataclass(frozen=True)
class KeyState:
    key_id: str
    destroyed: bool


#: How long a found key is used from memory before it is read again.
CACHE_SECONDS = 5.0
#: Keys kept in memory per store (the oldest is dropped first).
CACHE_ENTRIES = 10_000


class SubjectKeyStore:
    """Get-or-create, destroy and rewrap subject data keys (system role, org-pinned)."""

    #: Every store of this process, so that a destruction forgets the key in all of them.
    _live: ClassVar[weakref.WeakSet[SubjectKeyStore]] = weakref.WeakSet()

    def __init__(self, scopes: Scopes, keks: KekRing) -> None:
        self.scopes = scopes
        self.keks = keks
        self._cache: dict[tuple[uuid.UUID, str], tuple[float, SubjectKey]] = {}
        self._pending: dict[
            tuple[int, uuid.UUID, str, bool], asyncio.Future[SubjectKey | None]
        ] = {}
        SubjectKeyStore._live.add(self)

    async def get(
        self, org_id: uuid.UUID, subject_id: str, *, create: bool = True
    ) -> SubjectKey | None:
        """The subject's key; None when it was destroyed (or is absent and ``create`` is off)."""
        cached = self._cache.get((org_id, subject_id))
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        # One read per key at a time: concurrent events about one subject (a burst, or 256
        # producers) wait for the same read instead of each opening a transaction.
        # (Per event loop: the sync twin of log_audit_event runs on a loop of its own.)
        flight = (id(asyncio.get_running_loop()), org_id, subject_id, create)
        pending = self._pending.get(flight)
        if pending is not None:
            return await asyncio.shield(pending)
        task = asyncio.ensure_future(self._read_and_keep(org_id, subject_id, create=create))
        self._pending[flight] = task
        # Forgotten when the read ends, whoever waits: a cancelled first caller leaves the
        # read going for the others.
        task.add_done_callback(lambda _: self._pending.pop(flight, None))
        return await asyncio.shield(task)

    async def _read_and_keep(
        self, org_id: uuid.UUID, subject_id: str, *, create: bool
    ) -> SubjectKey | None:
        """One read of the store; a found key is kept (once, by the read, not by each waiter)."""
        key = await self._read(org_id, subject_id, create=create)
        if key is not None:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache.pop((org_id, subject_id), None)  # re-inserted last: the newest
            self._cache[(org_id, subject_id)] = (time.monotonic(), key)
        return key

    async def _read(self, org_id: uuid.UUID, subject_id: str, *, create: bool) -> SubjectKey | None:
        async with self.scopes.system_scope(KEY_ACTOR, org_id) as session:
            row = await self._row(session, org_id, subject_id)
            if row is None and create:
                key_id = f"dk_{uuid.uuid4().hex}"
                data_key = os.urandom(32)
                await session.execute(
                    sa.text(
                        "insert into audit_subject_keys (org_id, subject_id, key_id, kek_id,"
                        " wrapped_key) values (:o, :s, :k, :kek, :w) on conflict do nothing"
                    ),
                    {
                        "o": org_id,
                        "s": subject_id,
                        "k": key_id,
                        "kek": self.keks.active_id,
                        "w": self.keks.wrap(data_key, org_id, subject_id, key_id),
                    },
                )
                row = await self._row(session, org_id, subject_id)
        if row is None or row.wrapped_key is None:
            return None
        data_key = self.keks.unwrap(row.wrapped_key, row.kek_id, org_id, subject_id, row.key_id)
        return SubjectKey(subject_id, row.key_id, data_key)

    async def _row(self, session: Unit, org_id: uuid.UUID, subject_id: str) -> Row | None:
        result = await session.execute(
            sa.text(
                "select key_id, kek_id, wrapped_key from audit_subject_keys"
                " where org_id = :o and subject_id = :s"
            ),
            {"o": org_id, "s": subject_id},
        )
        return result.first()

    async def keys_for(
        self, org_id: uuid.UUID, subject_ids: Iterable[str]
    ) -> dict[str, SubjectKey | None]:
        """Existing keys of several subjects (for display); destroyed or absent ones are None."""
        wanted = sorted(set(subject_ids))
        if not wanted:
            return {}
        async with self.scopes.system_scope(KEY_ACTOR, org_id) as session:
            rows = await session.execute(
                sa.text(
                    "select subject_id, key_id, kek_id, wrapped_key from audit_subject_keys"
                    " where org_id = :o and subject_id = any(:s)"
                ),
                {"o": org_id, "s": wanted},
            )
            found: dict[str, SubjectKey | None] = dict.fromkeys(wanted)
            for r in rows:
                if r.wrapped_key is not None:
                    dk = self.keks.unwrap(r.wrapped_key, r.kek_id, org_id, r.subject_id, r.key_id)
                    found[r.subject_id] = SubjectKey(r.subject_id, r.key_id, dk)
            return found

    @staticmethod
    async def destroy(session: Unit, org_id: uuid.UUID, subject_id: str) -> KeyState | None:
        """Destroy the key inside the caller's (erasure) transaction; idempotent. Every store
        of this process forgets the key now (before the commit: a miss only reads again)."""
        for store in list(SubjectKeyStore._live):
            store._cache.pop((org_id, subject_id), None)
        row = (
            await session.execute(
                sa.text(
                    "update audit_subject_keys set wrapped_key = null,"
                    " destroyed_at = coalesce(destroyed_at, now())"
                    " where org_id = :o and subject_id = :s returning key_id"
                ),
                {"o": org_id, "s": subject_id},
            )
        ).first()
        return None if row is None else KeyState(row.key_id, True)

    async def rewrap(self, org_id: uuid.UUID) -> int:
        """Re-wrap every live key of the org not under the active KEK (KEK rotation)."""
        moved = 0
        async with self.scopes.system_scope(KEY_ACTOR, org_id) as session:
            rows = await session.execute(
                sa.text(
                    "select subject_id, key_id, kek_id, wrapped_key from audit_subject_keys"
                    " where org_id = :o and wrapped_key is not null and kek_id <> :k"
                    " for update"
                ),
                {"o": org_id, "k": self.keks.active_id},
            )
            for r in rows.all():
                dk = self.keks.unwrap(r.wrapped_key, r.kek_id, org_id, r.subject_id, r.key_id)
                await session.execute(
                    sa.text(
                        "update audit_subject_keys set wrapped_key = :w, kek_id = :k,"
                        " rotated_at = now() where org_id = :o and subject_id = :s"
                    ),
                    {
                        "w": self.keks.wrap(dk, org_id, r.subject_id, r.key_id),
                        "k": self.keks.active_id,
                        "o": org_id,
                        "s": r.subject_id,
                    },
                )
                moved += 1
        return moved
