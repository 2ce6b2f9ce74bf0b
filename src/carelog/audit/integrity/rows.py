"""Stored audit rows -> canonical event bytes -> leaf hashes, fast enough for 10^6 rows.

The leaf of an event covers every stored column of ``audit_logs`` except ``txid`` (storage
bookkeeping: which transaction inserted the row, used only to read behind the writer). Rows
are read back exactly as stored and normalised deterministically (docs/integrity.md §6):

* uuid columns and text as their text; ``created_at`` as the canonical UTC timestamp;
* ``ip_address`` (inet) as PostgreSQL prints it, IPv6 re-written in RFC 5952 form;
* jsonb columns as JSON values, keys sorted; integer numbers in -2^63 … 2^64-1 as integers,
  every other number exactly as PostgreSQL stores it (plain decimal text, scale kept);
* ``schema_version`` as an integer.

The per-row path asks PostgreSQL for text (no per-value Python type conversion), so the
only Python work per row is one small dict, ``orjson.loads`` of the jsonb values, one
``orjson.dumps`` and one SHA-256. ``tests/audit/integrity`` checks that it produces the
same bytes as :func:`carelog.audit.integrity.canonical_event_bytes` of the typed row.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from hashlib import sha256
from typing import Any

import orjson
from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.string import TextLoader
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit.integrity.canonical import CANONICAL_VERSION, VERSION_KEY
from carelog.audit.integrity.canonical import _normalise as _normalise_value

__all__ = [
    "EVENT_FIELDS",
    "EVENT_SELECT",
    "EXCLUDED_COLUMNS",
    "driver_connection",
    "row_canonical_bytes",
    "row_document",
    "row_leaf_hash",
    "text_cursor",
]

#: The columns a leaf covers, in table order (the canonical form sorts keys anyway). Fixed
#: here rather than read from the schema: a new column must be a deliberate format change.
EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "org_id",
    "workos_user_id",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "data_subject_id",
    "old_values",
    "new_values",
    "metadata",
    "ip_address",
    "user_agent",
    "request_id",
    "created_at",
    "source",
    "schema_version",
)
EXCLUDED_COLUMNS: tuple[str, ...] = ("txid",)
_JSON_AT = tuple(EVENT_FIELDS.index(c) for c in ("old_values", "new_values", "metadata"))
_IP_AT = EVENT_FIELDS.index("ip_address")
_CREATED_AT = EVENT_FIELDS.index("created_at")
_ID_AT = EVENT_FIELDS.index("id")

_TIMESTAMP_SQL = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _select_expr(name: str, alias: str) -> str:
    column = f"{alias}.{name}"
    if name == "created_at":
        return _TIMESTAMP_SQL.format(column)
    if name == "metadata":
        return f'{alias}."metadata"'
    return column


def event_select(alias: str = "e") -> str:
    """The SELECT list giving a row in :data:`EVENT_FIELDS` order, as :func:`text_cursor` reads."""
    return ", ".join(_select_expr(name, alias) for name in EVENT_FIELDS)


EVENT_SELECT = event_select()

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# orjson reads integers beyond 64 bits as floats; such text takes the exact (slow) path.
_LONG_DIGITS = re.compile(r"\d{20}")
_OPTIONS = orjson.OPT_SORT_KEYS


def _exact_int(text: str) -> Any:
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else orjson.Fragment(text)


def _exact_json(text: str) -> Any:
    # Numbers keep PostgreSQL's decimal text, so 1.50 stays 1.50 and 10^30 stays exact.
    return json.loads(text, parse_float=orjson.Fragment, parse_int=_exact_int)


def _json_value(text: str) -> Any:
    if "." in text or _LONG_DIGITS.search(text):
        return _exact_json(text)
    return orjson.loads(text)


def _ip_value(text: str) -> str:
    if ":" not in text:
        return text  # PostgreSQL's IPv4 text is already the canonical dotted decimal
    value: Any = ipaddress.ip_interface(text) if "/" in text else ipaddress.ip_address(text)
    normalised: str = _normalise_value(value)
    return normalised


def row_document(row: Sequence[Any]) -> dict[str, Any]:
    """The canonical document (without ``v``) of a row read with :data:`EVENT_SELECT`."""
    doc = dict(zip(EVENT_FIELDS, row[: len(EVENT_FIELDS)], strict=True))
    for i in _JSON_AT:
        text = row[i]
        if text is not None:
            doc[EVENT_FIELDS[i]] = _json_value(text)
    ip = row[_IP_AT]
    if ip is not None and ":" in ip:
        doc["ip_address"] = _ip_value(ip)
    return doc


def row_canonical_bytes(row: Sequence[Any]) -> bytes:
    doc = row_document(row)
    doc[VERSION_KEY] = CANONICAL_VERSION
    return orjson.dumps(doc, option=_OPTIONS)


_LEAF_PREFIXED = sha256(b"\x00")


def row_leaf_hash(row: Sequence[Any]) -> bytes:
    h = _LEAF_PREFIXED.copy()
    h.update(row_canonical_bytes(row))
    return h.digest()


def leaf_hashes(rows: Sequence[Sequence[Any]]) -> list[bytes]:
    """Leaf hashes of a batch of rows; the loop every sealer and verifier pass spends time in."""
    fields = EVENT_FIELDS
    json_at = _JSON_AT
    ip_at = _IP_AT
    dumps = orjson.dumps
    loads = orjson.loads
    long_digits = _LONG_DIGITS.search
    base = _LEAF_PREFIXED
    version_key, version = VERSION_KEY, CANONICAL_VERSION
    out: list[bytes] = []
    push = out.append
    for row in rows:
        doc = dict(zip(fields, row))  # noqa: B905 - rows come from EVENT_SELECT: same length
        for i in json_at:
            text = row[i]
            if text is not None:
                doc[fields[i]] = (
                    _exact_json(text) if "." in text or long_digits(text) else loads(text)
                )
        ip = row[ip_at]
        if ip is not None and ":" in ip:
            doc["ip_address"] = _ip_value(ip)
        doc[version_key] = version
        h = base.copy()
        h.update(dumps(doc, option=_OPTIONS))
        push(h.digest())
    return out


def row_id(row: Sequence[Any]) -> str:
    return str(row[_ID_AT])


def row_created_at(row: Sequence[Any]) -> str:
    return str(row[_CREATED_AT])


# --------------------------------------------------------------------------- reading rows
async def driver_connection(session: AsyncSession) -> AsyncConnection[Any]:
    """The psycopg connection under a SQLAlchemy session, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, AsyncConnection):  # pragma: no cover - carelog uses psycopg
        raise TypeError("the integrity layer needs the psycopg async driver")
    return driver


def text_cursor(conn: AsyncConnection[Any], name: str | None = None) -> AsyncCursor[Any]:
    """A cursor reading uuid, inet and jsonb as PostgreSQL's text (server-side if named)."""
    cursor: AsyncCursor[Any] = conn.cursor(name=name) if name else conn.cursor()
    for type_name in ("uuid", "inet", "jsonb", "json"):
        cursor.adapters.register_loader(type_name, TextLoader)
    return cursor


# --------------------------------------------------------------------------- verify fast path
# For bulk verification PostgreSQL writes the JSON text of the scalar columns itself:
# to_json(text) escapes exactly as the canonical form does (", \, \b \t \n \f \r, other
# controls as lowercase \u00XX, nothing else), uuids and times are wrapped in quotes, and
# the keys are spelled out in code point order. Python then adds the parts PostgreSQL cannot
# write canonically (jsonb values with sorted keys, IPv6 addresses), hashes, and is done: one
# short row of seven strings instead of eighteen typed values. ``test_sealer`` checks the
# bytes equal :func:`row_canonical_bytes` (the reference path) on awkward events.
_KEYS_IN_ORDER = sorted((*EVENT_FIELDS, VERSION_KEY))
_MIDDLE = ("ip_address", "metadata", "new_values", "old_values")
_FIRST_MIDDLE = _KEYS_IN_ORDER.index(_MIDDLE[0])
assert tuple(_KEYS_IN_ORDER[_FIRST_MIDDLE : _FIRST_MIDDLE + len(_MIDDLE)]) == _MIDDLE


def _json_sql(name: str, alias: str) -> str:
    column = f'{alias}."{name}"'
    if name == VERSION_KEY:
        return str(CANONICAL_VERSION)
    if name in ("id", "org_id"):
        return f"'\"' || {column}::text || '\"'"
    if name == "created_at":
        return "'\"' || " + _TIMESTAMP_SQL.format(column) + " || '\"'"
    if name == "schema_version":
        return f"{column}::text"
    return f"COALESCE(pg_catalog.to_json({column})::text, 'null')"


def _json_members_sql(keys: Sequence[str], alias: str) -> str:
    return " || ',' || ".join(f"'\"{key}\":' || {_json_sql(key, alias)}" for key in keys)


def fast_select(alias: str = "e") -> str:
    """head, ip_address, metadata, new_values, old_values, tail, id (text)."""
    head = _KEYS_IN_ORDER[:_FIRST_MIDDLE]
    tail = _KEYS_IN_ORDER[_FIRST_MIDDLE + len(_MIDDLE) :]
    return (
        f"'{{' || {_json_members_sql(head, alias)} || ',', "
        f"{alias}.ip_address, {alias}.metadata, {alias}.new_values, {alias}.old_values, "
        f"',' || {_json_members_sql(tail, alias)} || '}}', {alias}.id::text"
    )


FAST_SELECT = fast_select()


def _canonical_json(text: str | None) -> bytes:
    if text is None:
        return b"null"
    return orjson.dumps(_json_value(text), option=_OPTIONS)


def fast_leaf_hashes(rows: Sequence[Sequence[Any]]) -> list[bytes]:
    """Leaf hashes of rows read with :data:`FAST_SELECT` (and :func:`text_cursor`)."""
    base = _LEAF_PREFIXED
    dumps, loads = orjson.dumps, orjson.loads
    long_digits = _LONG_DIGITS.search
    out: list[bytes] = []
    push = out.append
    for head, ip, meta, new, old, tail, *_ in rows:
        if ip is None:
            ip_json = b"null"
        elif ":" in ip:
            ip_json = dumps(_ip_value(ip))
        else:
            ip_json = b'"' + ip.encode() + b'"'
        if meta is None:
            meta_json = b"null"
        elif "." in meta or long_digits(meta):
            meta_json = _canonical_json(meta)
        else:
            meta_json = dumps(loads(meta), option=_OPTIONS)
        h = base.copy()
        h.update(
            b"".join(
                (
                    head.encode(),
                    b'"ip_address":',
                    ip_json,
                    b',"metadata":',
                    meta_json,
                    b',"new_values":',
                    b"null" if new is None else _canonical_json(new),
                    b',"old_values":',
                    b"null" if old is None else _canonical_json(old),
                    tail.encode(),
                )
            )
        )
        push(h.digest())
    return out
