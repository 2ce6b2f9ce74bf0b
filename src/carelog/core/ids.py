"""Time-ordered identifiers.

Audit event ids are UUIDv7 (RFC 9562): the first 48 bits are the Unix time in milliseconds, so
ids sort roughly by creation and index inserts stay append-mostly. Python 3.11 has no
``uuid.uuid7``; this is the RFC's layout with random bits from ``os.urandom``.

The random bits come from ``os.urandom`` on every call (the kernel CSPRNG): no pool of random
bytes is kept in the process, so two threads, or a forked child, can never hand out the same
id (a duplicate would be silently dropped by ``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

import os
import time
import uuid

from carelog.core.errors import CarelogError

_MS_MASK = (1 << 48) - 1
# the version (4 bits at 76) and variant (2 bits at 62) positions, cleared then set
_CLEAR = ((1 << 128) - 1) ^ ((0xF << 76) | (0x3 << 62))
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
_SAFE = uuid.SafeUUID.unknown


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    # 48 bits of time, then 80 random bits of which 6 are overwritten by version and variant:
    # rand_a (12 bits) and rand_b (62 bits) stay random.
    value = ((ms & _MS_MASK) << 80 | int.from_bytes(os.urandom(10), "big")) & _CLEAR
    value |= _VERSION_VARIANT
    # uuid.UUID(int=...) validates its arguments, a third of the cost of the whole call here;
    # this is what its __init__ ends with (UUID is immutable through __setattr__).
    result = object.__new__(uuid.UUID)
    object.__setattr__(result, "int", value)
    object.__setattr__(result, "is_safe", _SAFE)
    return result


def parse_uuid(
    value: uuid.UUID | str,
    *,
    field: str,
    what: str = "an organization id",
    error: type[CarelogError] = CarelogError,
) -> uuid.UUID:
    """``value`` as a UUID, or ``error`` naming the field: ids from requests, tokens and
    configuration are checked once, at the edge, with one message."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise error(f"{value!r} is not {what}", field=field, hint="expected a UUID") from None
