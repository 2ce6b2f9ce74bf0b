"""Canonical, versioned bytes for an audit event: the exact input to its Merkle leaf hash.

The format is specified in docs/integrity.md so that a third party can recompute leaf
hashes without carelog. In short: the event plus ``"v": 1`` as JSON with keys sorted by
code point, no whitespace, UTF-8, non-ASCII unescaped, and every value reduced to a
string, integer, boolean, null, array or object by the rules below. Floats are
rejected rather than formatted, because float text is the least portable part of JSON.

orjson produces the bytes; the rules only ever hand it types whose encoding matches
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from hashlib import sha256
from typing import Any
from uuid import UUID

import orjson

__all__ = [
    "CANONICAL_VERSION",
    "VERSION_KEY",
    "canonical_bytes",
    "canonical_event_bytes",
    "encode_plain",
    "event_leaf_hash",
    "format_timestamp",
    "normalise_value",
]

CANONICAL_VERSION = 1
VERSION_KEY = "v"

# orjson encodes these exact types the canonical way already (UUID: lowercase, hyphenated).
_PLAIN: frozenset[type] = frozenset({str, int, bool, type(None), UUID})

# OPT_UTC_Z makes orjson print a UTC datetime exactly as the format requires, as long as
# its fraction is non-zero; every other datetime is converted to text before orjson sees
# it. Passthrough makes orjson refuse dataclasses and subclasses of builtins rather than
# apply encodings of its own to them.
_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_UTC_Z
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)

_IP_ADDRESS = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_IP_NETWORK = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_IP_INTERFACE = (ipaddress.IPv4Interface, ipaddress.IPv6Interface)


def format_timestamp(value: datetime) -> str:
    """UTC RFC 3339 with exactly six fractional digits, so equal instants give equal text."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetimes are ambiguous; audit timestamps must carry a timezone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"datetime {value!r} is outside the representable UTC range") from exc
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def _ip_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv4Address):
        return socket.inet_ntoa(address.packed)
    # Python 3.13 changed how str() prints IPv4-mapped IPv6 addresses; pin RFC 5952 §5.
    if address.ipv4_mapped is not None:
        scope = f"%{address.scope_id}" if address.scope_id else ""
        return f"::ffff:{address.ipv4_mapped}{scope}"
    return address.compressed


def _key(key: object) -> str:
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str.__str__(key)
    raise ValueError(f"object keys must be strings, got {type(key).__name__}")


def normalise_value(value: object) -> Any:
    """Reduce a value to JSON types whose orjson encoding is the canonical one, or reject it."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is datetime:
        utc_with_fraction = value.tzinfo is UTC and value.microsecond  # type: ignore[attr-defined]
        return value if utc_with_fraction else format_timestamp(value)  # type: ignore[arg-type]
    if kind is dict:
        return {_key(k): normalise_value(v) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind is list or kind is tuple:
        return [normalise_value(v) for v in value]  # type: ignore[attr-defined]
    if kind is ipaddress.IPv4Address:
        return socket.inet_ntoa(value.packed)  # type: ignore[attr-defined]
    if isinstance(value, float):
        raise ValueError("floats are not allowed in audit events; use an int or a string")
    if isinstance(value, Enum):
        return normalise_value(value.value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, _IP_INTERFACE):  # before addresses: interfaces subclass them
        return f"{_ip_text(value.ip)}/{value.network.prefixlen}"
    if isinstance(value, _IP_ADDRESS):
        return _ip_text(value)
    if isinstance(value, _IP_NETWORK):
        return f"{_ip_text(value.network_address)}/{value.prefixlen}"
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping):  # last: ABC checks are slow
        return {_key(k): normalise_value(v) for k, v in value.items()}
    raise ValueError(f"values of type {kind.__name__} are not allowed in audit events")


def canonical_bytes(document: Mapping[str, object], version: int) -> bytes:
    """Shared by events and checkpoints so both follow one documented encoding."""
    doc: dict[Any, Any] = dict(document)
    if VERSION_KEY in doc:
        raise ValueError(f"the key {VERSION_KEY!r} is reserved for the format version")
    doc[VERSION_KEY] = version
    plain = _PLAIN
    # Hot path (hundreds of thousands of events a second): touch only non-plain values.
    for key, value in doc.items():
        if type(value) in plain:
            continue
        try:
            doc[key] = normalise_value(value)
        except ValueError as exc:
            raise ValueError(f"field {key!r}: {exc}") from None
        except RecursionError:
            raise ValueError(f"field {key!r}: nesting is too deep") from None
    try:
        return orjson.dumps(doc, option=_OPTIONS)
    except orjson.JSONEncodeError:
        pass
    # Rare: str-subclass keys, or something orjson refuses (out-of-range int, lone
    # surrogate); normalise keys and retry so the error, if any, is precise.
    try:
        return orjson.dumps({_key(k): v for k, v in doc.items()}, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"audit event cannot be encoded canonically: {exc}") from None


def encode_plain(value: object) -> bytes:
    """The canonical JSON of a value already reduced to JSON types (str, int, bool, None,
    lists, dicts with str keys) or ``orjson.Fragment`` holding a number exactly as
    PostgreSQL stored it. Stored rows take this route (:mod:`carelog.audit.integrity.rows`):
    they are read back as text, so there is nothing to normalise but the jsonb numbers."""
    return orjson.dumps(value, option=_OPTIONS)


def canonical_event_bytes(event: Mapping[str, object]) -> bytes:
    return canonical_bytes(event, CANONICAL_VERSION)


_LEAF_PREFIXED = sha256(b"\x00")


def event_leaf_hash(event: Mapping[str, object]) -> bytes:
    """Equal to ``merkle.leaf_hash(canonical_event_bytes(event))``, minus one copy."""
    h = _LEAF_PREFIXED.copy()
    h.update(canonical_bytes(event, CANONICAL_VERSION))
    return h.digest()
