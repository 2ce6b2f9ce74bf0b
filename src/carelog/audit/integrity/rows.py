"""Stored audit rows -> canonical event bytes: the one encoder of a leaf's input.

The leaf of an event covers every stored column of ``audit_logs`` except ``txid`` (storage
bookkeeping: which transaction inserted the row, used only to read behind the writer), read
back exactly as stored and normalised as docs/integrity.md §6 says. Every reader of stored
events (the sealer, the verifier, proofs, bundles) gets its rows the same way, as lines of
one ``COPY … TO STDOUT`` (:func:`events_copy`), and turns them into bytes with one
:class:`RowEncoder`:

* the **quick route**, taken by almost every line: PostgreSQL prints the text columns and the
  timestamp, and when a line needs no JSON escaping (no ``"``, no backslash, no control
  character in its text part: COPY writes every data backslash and ``\\b \\f \\n \\r \\t \\v``
  with one, so they all show) its bytes are dropped into a per-NULL-pattern template of the
  canonical document; the jsonb values are re-serialised with sorted keys, IPv6 addresses put
  in RFC 5952 form;
* the **exact route** for every other line: each field is unescaped, the document is built
  and serialised by :func:`carelog.audit.integrity.canonical.encode_plain`, the same encoder
  that serialises typed events and checkpoints.

``tests/audit/integrity`` checks both routes against
:func:`carelog.audit.integrity.canonical_event_bytes` of the typed row, on awkward and on random
events. The format is versioned (:data:`CURRENT_FORMAT`): a new version gets a new
:class:`EventFormat` and its own templates, and version 1 bytes never change meaning.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import orjson
from psycopg import AsyncConnection, sql

from carelog.audit.integrity.canonical import (
    CANONICAL_VERSION,
    VERSION_KEY,
    encode_plain,
    normalise_value,
)

__all__ = [
    "CURRENT_FORMAT",
    "EVENT_FIELDS",
    "EXCLUDED_COLUMNS",
    "EventFormat",
    "LineKey",
    "RowEncoder",
    "events_copy",
    "line_key",
    "split_line",
]


@dataclass(frozen=True)
class EventFormat:
    """One version of the canonical event document: which columns, and how they are typed.

    Fixed in code rather than read from the schema: a new column must be a deliberate format
    change (``tests/audit/integrity/test_sealer.py`` fails when the table gains one).
    """

    version: int
    fields: tuple[str, ...]  # in table order; the canonical form sorts keys anyway
    json_fields: tuple[str, ...]  # jsonb: re-serialised with sorted keys
    inet_field: str
    int_fields: tuple[str, ...]  # written as JSON integers
    nullable_text: tuple[str, ...]  # text columns that may be NULL


#: Format version 1 (docs/integrity.md §6).
FORMAT_V1 = EventFormat(
    version=1,
    fields=(
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
    ),
    json_fields=("metadata", "new_values", "old_values"),
    inet_field="ip_address",
    int_fields=("schema_version",),
    nullable_text=("data_subject_id", "request_id", "resource_id", "user_agent"),
)
CURRENT_FORMAT = FORMAT_V1
assert CURRENT_FORMAT.version == CANONICAL_VERSION
EVENT_FIELDS: tuple[str, ...] = CURRENT_FORMAT.fields
EXCLUDED_COLUMNS: tuple[str, ...] = ("txid",)

_TIMESTAMP_SQL = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


# --------------------------------------------------------------------------- the COPY line
# Columns: inet and the jsonb values, the text columns in key order, a bit mask of the
# nullable text columns that are NULL, then txid (and whatever a caller appends). NULL is
# written as '' (never a backslash): unambiguous for inet and jsonb (never empty), and told
# apart from an empty string by ``nulls`` for the text columns that may be NULL.
_F = CURRENT_FORMAT
_TAIL_COLUMNS = (_F.inet_field, *sorted(_F.json_fields))
_TEXT_COLUMNS = tuple(sorted(set(_F.fields) - set(_TAIL_COLUMNS)))
COPY_COLUMNS = (*_TAIL_COLUMNS, *_TEXT_COLUMNS, "nulls", "txid")
_AT = {name: i for i, name in enumerate(COPY_COLUMNS)}
_TXID_AT = _AT["txid"]
#: Fields of a line before any columns a caller appends (:func:`events_copy` ``extra``).
LINE_FIELDS = len(COPY_COLUMNS)
_QUOTED = frozenset(_TEXT_COLUMNS) - set(_F.int_fields)
# The quick route lays the jsonb and inet values out in key order, between the text columns.
assert list(_TAIL_COLUMNS) == sorted(_TAIL_COLUMNS)


def _column_sql(name: str, alias: str) -> str:
    if name == "created_at":
        return _TIMESTAMP_SQL.format(f"{alias}.created_at")
    if name == "nulls":
        return " + ".join(
            f'{1 << i} * ({alias}."{c}" IS NULL)::int' for i, c in enumerate(_F.nullable_text)
        )
    return f'{alias}."{name}"'


def select_list(alias: str = "e") -> str:
    """The SELECT list of an events COPY (:data:`COPY_COLUMNS`)."""
    return ", ".join(_column_sql(name, alias) for name in COPY_COLUMNS)


_SELECT = select_list()
SEALING_ORDER = "e.txid, e.created_at, e.id"
_KEY = f"({SEALING_ORDER})"


def _key_literal(key: LineKey) -> sql.Composed:
    event_id, created_at, txid = key
    return sql.SQL("(({})::bigint, ({})::timestamptz, ({})::uuid)").format(
        sql.Literal(int(txid)), sql.Literal(str(created_at)), sql.Literal(str(event_id))
    )


def events_copy(
    org_id: uuid.UUID | str,
    *,
    after: LineKey | None = None,
    from_key: LineKey | None = None,
    before: LineKey | None = None,
    where: sql.Composable | None = None,
    limit: int | None = None,
) -> sql.Composed:
    """The events of ``org_id`` in sealing order ``(txid, created_at, id)`` as a COPY.

    ``after``/``from_key``/``before`` bound the range by sealing key (exclusive, inclusive,
    exclusive); ``where`` adds a condition on ``e``; ``limit`` caps the rows (keyset paging).
    """
    parts: list[sql.Composable] = [
        sql.SQL(f"COPY (SELECT {_SELECT} FROM audit_logs e WHERE e.org_id = "),
        sql.Literal(str(org_id)),
    ]
    for key, op in ((after, ">"), (from_key, ">="), (before, "<")):
        if key is not None:
            # the txid bound first, so the (org_id, txid) index starts the scan there
            txid = sql.Literal(int(key[2]))
            parts += [sql.SQL(" AND e.txid {} ").format(sql.SQL(op[0] + "=")), txid]
            parts += [sql.SQL(f" AND {_KEY} {op} "), _key_literal(key)]
    if where is not None:
        parts += [sql.SQL(" AND "), where]
    parts.append(sql.SQL(f" ORDER BY {SEALING_ORDER}"))
    if limit is not None:
        parts += [sql.SQL(" LIMIT "), sql.Literal(int(limit))]
    parts.append(sql.SQL(") TO STDOUT (FORMAT text, NULL '')"))
    return sql.Composed(parts)


#: (id, created_at, txid) of an event: where it stands in sealing order.
LineKey = tuple[str, str, int]


def split_line(line: bytes) -> list[bytes]:
    """A COPY line as its fields (the last keeps the newline)."""
    return line.split(b"\t")


def line_key(parts: Sequence[bytes]) -> LineKey:
    """(id, created_at, txid) of a split line."""
    return (
        parts[_AT["id"]].decode(),
        parts[_AT["created_at"]].decode(),
        int(parts[_TXID_AT]),
    )


def line_id(parts: Sequence[bytes]) -> str:
    return parts[_AT["id"]].decode()


# --------------------------------------------------------------------------- values
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# orjson reads integers beyond 64 bits as floats; such text takes the exact (slow) path.
_LONG_DIGITS = re.compile(r"\d{20}")
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_ESCAPES = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _exact_int(text: str) -> Any:
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else orjson.Fragment(text)


def json_value(text: str) -> Any:
    """A jsonb value as PostgreSQL printed it, numbers other than 64-bit integers kept as
    their stored text (so 1.50 stays 1.50 and 10^30 stays exact)."""
    if "." in text or _LONG_DIGITS.search(text):
        return json.loads(text, parse_float=orjson.Fragment, parse_int=_exact_int)
    return orjson.loads(text)


def canonical_json(text: str) -> bytes:
    return encode_plain(json_value(text))


def ip_value(text: str) -> str:
    """inet as PostgreSQL printed it -> its canonical text (IPv6 in RFC 5952 form)."""
    if ":" not in text:
        return text  # PostgreSQL's IPv4 text is already the canonical dotted decimal
    value: Any = ipaddress.ip_interface(text) if "/" in text else ipaddress.ip_address(text)
    normalised: str = normalise_value(value)
    return normalised


def _copy_value(text: bytes) -> str:
    """One COPY text field as the string it stands for."""
    if b"\\" in text:
        text = _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)
    return text.decode()


def line_document(parts: Sequence[bytes]) -> dict[str, Any]:
    """The canonical document (without ``v``) of a split line: the exact route's input."""
    nulls = int(parts[_AT["nulls"]])
    doc: dict[str, Any] = {}
    for name in _F.fields:
        text = parts[_AT[name]]
        null = name in _F.nullable_text and nulls >> _F.nullable_text.index(name) & 1
        if null or (name in _TAIL_COLUMNS and not text):
            doc[name] = None
        elif name in _F.json_fields:
            doc[name] = json_value(_copy_value(text))
        elif name == _F.inet_field:
            doc[name] = ip_value(_copy_value(text))
        elif name in _F.int_fields:
            doc[name] = int(text)
        else:
            doc[name] = _copy_value(text)
    return doc


# --------------------------------------------------------------------------- the encoder
_DELETE = b"\\" + bytes(range(0x20))
_NULLS_AT = _AT["nulls"]
LEAF_PREFIX = sha256(b"\x00")


def _template(nulls: int) -> bytes:
    """The canonical document with %s for each value, NULLs of the nullable columns inlined."""
    members = []
    for name in sorted((*_F.fields, VERSION_KEY)):
        if name == VERSION_KEY:
            value = str(_F.version)
        elif name in _F.nullable_text and nulls >> _F.nullable_text.index(name) & 1:
            value = "null%s"  # the column is '' (NULL) in the COPY line
        elif name in _QUOTED:
            value = '"%s"'
        else:
            value = "%s"
        members.append(f'"{name}":{value}')
    return ("{" + ",".join(members) + "}").encode()


_TEMPLATES = {str(n).encode(): _template(n) for n in range(1 << len(_F.nullable_text))}
# RowEncoder.canonical unpacks a line by position: it must be laid out like this.
assert COPY_COLUMNS == (
    "ip_address", "metadata", "new_values", "old_values", "action", "actor_type",
    "created_at", "data_subject_id", "id", "org_id", "outcome", "request_id", "resource_id",
    "resource_type", "schema_version", "source", "user_agent", "workos_user_id", "nulls", "txid",
)  # fmt: skip


class RowEncoder:
    """COPY lines of :func:`events_copy` -> canonical event bytes and leaf hashes.

    Nothing is memoised: on real logs metadata differs from event to event, and a memo that
    always misses only costs. One instance per stream all the same (cheap, and the natural
    place for a later format version's state).
    """

    def canonical(self, parts: Sequence[bytes], line: bytes) -> bytes:
        """The canonical bytes of ``line`` (split by :func:`split_line` into ``parts``)."""
        # n fields: n - 1 tabs and the newline, and no other control character or backslash
        if len(line) - len(line.translate(None, _DELETE)) != len(parts):
            return self.exact(parts)
        return self._quick(parts, line)

    @staticmethod
    def _quick(parts: Sequence[bytes], line: bytes) -> bytes:
        """The quick route, for a line known to hold no backslash or control character."""
        ip, meta, new, old = parts[0], parts[1], parts[2], parts[3]
        template = _TEMPLATES.get(parts[_NULLS_AT])
        # no quote in the text columns (the jsonb values come first and may hold quotes)
        if template is None or line.find(b'"', len(ip) + len(meta) + len(new) + len(old) + 4) >= 0:
            return RowEncoder.exact(parts)
        (_ip, _meta, _new, _old, action, actor, created, subject, event_id, org, outcome,
         request, resource, rtype, version, source, agent, user, *_) = parts  # fmt: skip
        return template % (
            action,
            actor,
            created,
            subject,
            event_id,
            (b'"' + ip + b'"' if b":" not in ip else _ipv6_json(ip)) if ip else b"null",
            _jsonb(meta),
            _jsonb(new),
            _jsonb(old),
            org,
            outcome,
            request,
            resource,
            rtype,
            version,
            source,
            agent,
            user,
        )

    @staticmethod
    def exact(parts: Sequence[bytes]) -> bytes:
        """The canonical bytes of a split line, field by field (no assumptions)."""
        doc = line_document(parts[:LINE_FIELDS])
        doc[VERSION_KEY] = _F.version
        return encode_plain(doc)

    def leaf(self, line: bytes) -> bytes:
        h = LEAF_PREFIX.copy()
        h.update(self.canonical(split_line(line), line))
        return h.digest()

    def leaves(self, lines: Sequence[bytes]) -> list[bytes]:
        """Leaf hashes of a run of lines. The backslash and control-character check is done
        once for the whole run (one C-speed pass); only a run that fails it is checked line
        by line."""
        blob = b"".join(lines)
        separators = blob.count(b"\t") + len(lines)
        if len(blob) - len(blob.translate(None, _DELETE)) != separators:
            return [self.leaf(line) for line in lines]
        quick, base = self._quick, LEAF_PREFIX
        out: list[bytes] = []
        push = out.append
        for line in lines:
            h = base.copy()
            h.update(quick(line.split(b"\t"), line))
            push(h.digest())
        return out


_dumps, _loads, _SORT = orjson.dumps, orjson.loads, orjson.OPT_SORT_KEYS


def _jsonb(text: bytes) -> bytes:
    """A jsonb value's canonical JSON; numbers other than 64-bit integers keep their text.

    orjson's sorted output is the canonical form unless a number is not a 64-bit integer: a
    decimal, or an integer orjson reads as a float because it is wider. PostgreSQL prints
    jsonb numbers without exponents, so such a number is exactly a float in orjson's reading,
    and then the exact route keeps its text. (Before, any "." in the document, a domain or a
    version string too, sent it down the exact route: most of the sealer's time.) The walk
    looking for a float runs only when the output could hold one."""
    if not text:
        return b"null"
    value = _loads(text)
    out = _dumps(value, option=_SORT)
    # orjson prints a float with a "." or as digits then an exponent ("1e30"): without either
    # in the output there is none, and the walk is skipped.
    if _FLOATISH.search(out) is not None and _has_float(value):
        return canonical_json(text.decode())
    return out


_FLOATISH = re.compile(rb"\.|\de")


def _has_float(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return True
    if kind is dict:
        return any(map(_has_float, value.values()))
    if kind is list:
        return any(map(_has_float, value))
    return False


def _ipv6_json(text: bytes) -> bytes:
    return orjson.dumps(ip_value(text.decode()))


# --------------------------------------------------------------------------- reading
async def copy_lines(
    conn: AsyncConnection[Any], statement: sql.Composed | bytes, params: Any = None
) -> list[bytes]:
    """Every line of a (bounded) COPY, read to the end so the connection is free again."""
    async with conn.cursor() as cur, cur.copy(statement, params) as copy:
        return [bytes(data) async for data in copy]


def utf8(conn: AsyncConnection[Any]) -> bool:
    """COPY text is in the client encoding; the encoder reads UTF-8."""
    return conn.info.encoding.lower().replace("-", "") == "utf8"


async def event_lines(
    conn: AsyncConnection[Any], org_id: uuid.UUID | str, event_id: uuid.UUID | str
) -> list[bytes]:
    """The stored rows with this id (one, unless the log was tampered with)."""
    where = sql.SQL("e.id = {}::uuid").format(sql.Literal(str(event_id)))
    return await copy_lines(conn, events_copy(org_id, where=where))
