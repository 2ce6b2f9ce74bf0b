"""Typed filters and opaque cursors for reading the audit log.

The legacy platform built its query from a loose dict and silently overwrote or ignored keys (a date
range with both ends kept only one). Here the filters are one frozen, validated value: every
field set is a condition, all of them are ANDed, and a bad value fails at once with the field
named, before any SQL runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from carelog.audit.catalog import OUTCOMES, AuditCatalog, Outcome
from carelog.audit.errors import AuditInputError

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
_MAX_TEXT = 256
MAX_VALUES = 50  # per repeatable filter: keeps every record of the filters small and bounded
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_VERSION = 1
_CURSOR = struct.Struct(">Bq16s8s")  # version, epoch microseconds, event id, check


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise AuditInputError(f"{value!r} is not a datetime", field=name)
    if value.tzinfo is None or value.utcoffset() is None:
        raise AuditInputError(
            "must be timezone-aware",
            field=name,
            hint="pass e.g. datetime(2024, 1, 1, tzinfo=UTC); naive times are ambiguous",
        )
    return value


def _texts(name: str, values: Iterable[str] | str) -> tuple[str, ...]:
    # A bare string is iterable too: treat it as one value, not as its characters.
    items = (values,) if isinstance(values, str) else tuple(values)
    if len(set(items)) > MAX_VALUES:
        raise AuditInputError(
            f"{len(set(items))} values given, at most {MAX_VALUES} are allowed",
            field=name,
            hint="narrow the filter, or run several exports",
        )
    for item in items:
        _text(name, item)
    return tuple(dict.fromkeys(items))


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise AuditInputError(
            f"{value!r} must be a non-empty string of at most {_MAX_TEXT} characters", field=name
        )
    if _UNSTORABLE.search(value):
        # PostgreSQL text cannot hold NUL, and a lone surrogate is not UTF-8: either would
        # reach the database as an error instead of a condition.
        raise AuditInputError("must not contain NUL or unpaired surrogate characters", field=name)
    return value


@dataclass(frozen=True, kw_only=True)
class AuditFilters:
    """What to read. Empty tuples and ``None`` mean "no condition"; everything else is ANDed."""

    start: datetime | None = None
    end: datetime | None = None
    actions: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    resource_id: str | None = None
    actor_id: str | None = None
    data_subject_id: str | None = None
    outcomes: tuple[Outcome, ...] = ()
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        start = _aware("start", self.start)
        end = _aware("end", self.end)
        if start is not None and end is not None and not start < end:
            raise AuditInputError(
                "start must be before end", field="start", hint=f"got {start} .. {end}"
            )
        outcomes = _texts("outcomes", self.outcomes)
        for outcome in outcomes:
            if outcome not in OUTCOMES:
                raise AuditInputError(
                    f"unknown outcome {outcome!r}",
                    field="outcomes",
                    hint=f"one of {', '.join(OUTCOMES)}",
                )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise AuditInputError(f"{self.limit!r} is not an integer", field="limit")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise AuditInputError(
                f"{self.limit} is out of range", field="limit", hint=f"1..{MAX_LIMIT}"
            )
        set_ = object.__setattr__  # normalise in place: the instance is frozen to callers
        set_(self, "actions", _texts("actions", self.actions))
        set_(self, "resource_types", _texts("resource_types", self.resource_types))
        set_(self, "outcomes", cast(tuple[Outcome, ...], outcomes))
        for name in ("resource_id", "actor_id", "data_subject_id"):
            _text(name, getattr(self, name))

    def check_known(self, catalog: AuditCatalog) -> AuditFilters:
        """The same filters, refused unless every action and resource type is in the catalog:
        a filter naming nothing that can exist is a mistake (or a probe), and an export
        records its filters, so they must be the bounded vocabulary, not free text."""
        for action in self.actions:
            try:
                catalog.action(action)
            except AuditInputError as exc:
                raise AuditInputError(exc.message, field="actions", hint=exc.hint) from None
        for resource_type in self.resource_types:
            try:
                catalog.check_resource_type(resource_type)
            except AuditInputError as exc:
                raise AuditInputError(exc.message, field="resource_types", hint=exc.hint) from None
        return self

    def with_limit(self, limit: int) -> AuditFilters:
        """The same conditions with another page size (exports ignore the page size)."""
        return AuditFilters(**{**self._conditions(), "limit": limit})

    def _conditions(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "actions": self.actions,
            "resource_types": self.resource_types,
            "resource_id": self.resource_id,
            "actor_id": self.actor_id,
            "data_subject_id": self.data_subject_id,
            "outcomes": self.outcomes,
        }

    def to_json_dict(self) -> dict[str, Any]:
        """The conditions as plain JSON (for export records and the AUDIT_LOG_EXPORTED event)."""
        out: dict[str, Any] = {}
        for key, value in self._conditions().items():
            if value is None or value == ():
                continue
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, tuple):
                out[key] = list(value)
            else:
                out[key] = value
        return out

    def fingerprint(self) -> bytes:
        """Binds a cursor to the conditions it was issued for (the page size may change)."""
        canonical = repr(sorted(self.to_json_dict().items())).encode()
        return hashlib.blake2b(canonical, digest_size=16).digest()


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Cursor:
    """Position after the last row of a page: its ``(created_at, id)``.

    Opaque to callers. A check value over the position and the filters catches truncated or
    edited cursors and cursors replayed with other filters; it is not a secret (RLS, not the
    cursor, decides what a caller may read, so a forged position reveals nothing).
    """

    created_at: datetime
    id: uuid.UUID

    def encode(self, filters: AuditFilters) -> str:
        micros = _micros(self.created_at)
        check = _digest(micros, self.id.bytes, filters)
        raw = _CURSOR.pack(_CURSOR_VERSION, micros, self.id.bytes, check)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, token: str, filters: AuditFilters) -> Cursor:
        bad = AuditInputError(
            "invalid or tampered cursor",
            field="cursor",
            hint="pass next_cursor exactly as returned, with the same filters",
        )
        if not isinstance(token, str) or not 0 < len(token) <= 64:
            raise bad
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            version, micros, id_bytes, check = _CURSOR.unpack(raw)
        except (binascii.Error, ValueError, struct.error):
            raise bad from None
        if version != _CURSOR_VERSION or check != _digest(micros, id_bytes, filters):
            raise bad
        try:
            at = _EPOCH + timedelta(microseconds=micros)
        except OverflowError:
            raise bad from None
        return cls(at, uuid.UUID(bytes=id_bytes))


def _digest(micros: int, id_bytes: bytes, filters: AuditFilters) -> bytes:
    payload = struct.pack(">q", micros) + id_bytes + filters.fingerprint()
    return hashlib.blake2b(payload, digest_size=8, person=b"carelog-cursor").digest()
