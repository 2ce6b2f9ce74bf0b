"""The bulk fast path of :func:`carelog.audit.integrity.verify.verify_org` on an intact log.

On an intact log the seals in ``seq`` order and the events in sealing order
``(txid, created_at, id)`` pair up one to one, so verification reduces to: the ``i``-th
event's recomputed leaf equals the ``i``-th non-purged seal's stored leaf, for every ``i``.
That is checked in bulk:

* the stored leaves come from one aggregate over ``audit_seals`` (a single bytea, plus the
  purged seqs, the count and the seq range, which prove the seqs contiguous);
* the events come through one ``COPY … TO STDOUT`` in sealing order: PostgreSQL writes the
  JSON text of the scalar columns (as the reference fast select does), Python adds the jsonb
  and IPv6 parts (memoised per distinct value: they repeat), hashes, and compares whole
  batches of digests with the stored bytes at C speed.

Anything unexpected (a leaf that differs, a missing event, a purged event still present, a
gap in the seqs, a non-UTF-8 connection) makes :func:`fast_pass` return ``None``, and the
caller runs the reference pass, which names the first bad event. Events beyond the sealed
ones are handed back for the same pending/unsealed checks as in the reference pass.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import orjson
from psycopg import AsyncConnection, sql

from carelog.audit.integrity.rows import _canonical_json, _ip_value, fast_select

__all__ = ["FastResult", "canonical_from_copy_line", "fast_pass"]

BATCH = 8192
_CACHE_LIMIT = 65_536

_SEALS = (
    "SELECT count(*), min(seq), max(seq), "
    "string_agg(leaf_hash, ''::bytea ORDER BY seq), "
    "array_agg(seq ORDER BY seq) FILTER (WHERE purged) "
    "FROM audit_seals WHERE org_id = %s"
)
_FAST = fast_select("e").rsplit(", e.id::text", 1)[0]
_EVENTS_COPY = (
    f"COPY (SELECT e.txid, {_FAST} FROM audit_logs e WHERE e.org_id = ",
    " ORDER BY e.txid, e.created_at, e.id) TO STDOUT",
)
_NULL = b"\\N"


@dataclass
class FastResult:
    """What the fast pass established; ``tail`` are events after the last sealed one."""

    leaves: list[bytes]
    purged: int
    events_checked: int
    tail: list[tuple[str, str, int]] = field(default_factory=list)  # (id, created_at, txid)


class _Canonicaliser:
    """COPY text lines -> canonical event bytes, memoising jsonb and inet values."""

    def __init__(self) -> None:
        self.json: dict[bytes, bytes] = {_NULL: b"null"}
        self.ip: dict[bytes, bytes] = {_NULL: b"null"}

    def _json(self, text: bytes) -> bytes:
        if len(self.json) > _CACHE_LIMIT:
            self.json = {_NULL: b"null"}
        value = self.json[text] = _canonical_json(text.decode())
        return value

    def _ip(self, text: bytes) -> bytes:
        if len(self.ip) > _CACHE_LIMIT:
            self.ip = {_NULL: b"null"}
        ip = text.decode()
        value = self.ip[text] = orjson.dumps(_ip_value(ip)) if ":" in ip else b'"' + text + b'"'
        return value

    def fields(self, line: bytes) -> list[bytes]:
        if b"\\\\" in line:  # COPY text doubles backslashes; nothing else is escaped here
            line = line.replace(b"\\\\", b"\\")
        return line.rstrip(b"\n").split(b"\t")

    def canonical(self, parts: list[bytes]) -> bytes:
        _txid, head, ip, meta, new, old, tail = parts
        jc, ipc = self.json, self.ip
        return b"".join(
            (
                head,
                b'"ip_address":',
                ipc.get(ip) or self._ip(ip),
                b',"metadata":',
                jc.get(meta) or self._json(meta),
                b',"new_values":',
                jc.get(new) or self._json(new),
                b',"old_values":',
                jc.get(old) or self._json(old),
                tail,
            )
        )


def canonical_from_copy_line(line: bytes) -> bytes:
    """The canonical bytes of one line of the events COPY (for tests)."""
    c = _Canonicaliser()
    return c.canonical(c.fields(line))


def _tail_key(parts: list[bytes]) -> tuple[str, str, int]:
    head = orjson.loads(parts[1][:-1] + b"}")
    return str(head["id"]), str(head["created_at"]), int(parts[0])


async def fast_pass(conn: AsyncConnection[Any], org_id: uuid.UUID) -> FastResult | None:
    """Verify every sealed event in bulk; None if anything needs the reference pass."""
    if conn.info.encoding.lower().replace("-", "") != "utf8":
        return None
    async with conn.cursor(binary=True) as cur:
        await cur.execute(_SEALS, (org_id,))
        row = await cur.fetchone()
    if row is None or not row[0]:
        count, blob, purged_seqs = 0, b"", []
    else:
        count, lo, hi, raw, purged_raw = row
        if lo != 0 or hi != count - 1:
            return None  # a gap: the reference pass names it
        blob = bytes(raw)
        purged_seqs = list(purged_raw or [])
    leaves = [blob[i : i + 32] for i in range(0, len(blob), 32)]
    if purged_seqs:
        gone = set(purged_seqs)
        expected = b"".join(leaf for i, leaf in enumerate(leaves) if i not in gone)
    else:
        expected = blob
    n_expected = len(expected) // 32

    canon = _Canonicaliser()
    fields, canonical = canon.fields, canon.canonical
    base = sha256(b"\x00")
    digests: list[bytes] = []
    push = digests.append
    done = 0  # events compared so far
    ok = True
    tail: list[tuple[str, str, int]] = []
    before, after = _EVENTS_COPY
    statement = sql.Composed([sql.SQL(before), sql.Literal(str(org_id)), sql.SQL(after)])
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        async for data in copy:
            if not ok:
                continue  # drain: the reference pass takes over
            parts = fields(bytes(data))
            if done + len(digests) >= n_expected:
                tail.append(_tail_key(parts))
                continue
            h = base.copy()
            h.update(canonical(parts))
            push(h.digest())
            if len(digests) == BATCH:
                end = done + BATCH
                ok = b"".join(digests) == expected[done * 32 : end * 32]
                done = end
                digests.clear()
    if not ok:
        return None
    if digests:
        end = done + len(digests)
        if b"".join(digests) != expected[done * 32 : end * 32]:
            return None
        done = end
    if done != n_expected:
        return None  # sealed events missing from the log
    return FastResult(leaves, len(purged_seqs), done, tail)
