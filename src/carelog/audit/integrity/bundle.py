"""Export bundles with proofs, and their verification offline (no database, public key only).

A bundle is JSON Lines, every line written in one exact form (docs/integrity.md §9):

1. header: ``{"format": "carelog.audit.bundle", "version": 1, "org_id", "tree_size",
   "public_keys": {key id: base64 raw Ed25519 key}}``
2. the signed checkpoint every proof is against: ``{"type": "checkpoint", "checkpoint": …}``
3. one line per event: ``{"type": "event", "seq", "leaf_hash", "proof": [hex…],
   "canonical": base64 canonical bytes, "event": the same canonical JSON, verbatim}``
4. trailer: ``{"type": "end", "events": count}``

The verifier re-encodes every line it parsed and requires the very same bytes, so changing
any byte of a bundle makes it fail, even inside a field nothing else covers.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import sqlalchemy as sa

from carelog.audit.filters import AuditFilters
from carelog.audit.integrity.chain import load_checkpoints
from carelog.audit.integrity.checkpoint import SignedCheckpoint, VerifyingKeyring
from carelog.audit.integrity.merkle import leaf_hash, verify_inclusion
from carelog.audit.integrity.proofs import ProofTree, org_leaf_hashes
from carelog.audit.integrity.rows import (
    LEAF_PREFIX,
    LINE_FIELDS,
    RowEncoder,
    copy_lines,
    line_id,
    select_list,
    split_line,
)
from carelog.audit.query import conditions
from carelog.db.schema import AuditLog, AuditSeal
from carelog.db.unit import DIALECT, Unit

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "BundleReport", "stream_bundle", "verify_bundle"]

BUNDLE_FORMAT = "carelog.audit.bundle"
BUNDLE_VERSION = 1
_HEX32 = re.compile(r"[0-9a-f]{64}")
_LOGS = cast(sa.Table, AuditLog.__table__)
_SEALS = cast(sa.Table, AuditSeal.__table__)


class BundleError(ValueError):
    """The bundle cannot be produced (nothing sealed yet, or the log fails its own seals)."""


def _header(org_id: str, tree_size: int, public_keys: Mapping[str, str]) -> bytes:
    return orjson.dumps(
        {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "org_id": org_id,
            "tree_size": tree_size,
            "public_keys": dict(public_keys),
        }
    )


def _checkpoint_line(signed: SignedCheckpoint) -> bytes:
    return orjson.dumps({"type": "checkpoint", "checkpoint": signed.to_json_dict()})


def _event_line(seq: int, leaf: bytes, proof: list[bytes], canonical: bytes) -> bytes:
    return orjson.dumps(
        {
            "type": "event",
            "seq": seq,
            "leaf_hash": leaf.hex(),
            "proof": [p.hex() for p in proof],
            "canonical": base64.b64encode(canonical).decode("ascii"),
            "event": orjson.Fragment(canonical),
        }
    )


def _end_line(count: int) -> bytes:
    return orjson.dumps({"type": "end", "events": count})


async def stream_bundle(
    session: Unit,
    org_id: uuid.UUID,
    filters: AuditFilters,
    *,
    public_keys: Mapping[str, str] | None = None,
    batch_size: int = 1000,
    on_rows: Any = None,
) -> AsyncGenerator[bytes, None]:
    """The matching sealed events, oldest first, each with its proof against one checkpoint."""
    checkpoints = await load_checkpoints(session, org_id)
    if not checkpoints or checkpoints[-1].checkpoint.tree_size == 0:
        raise BundleError(f"nothing of org {org_id} is sealed yet; try after the next pass")
    signed = checkpoints[-1]
    size = signed.checkpoint.tree_size
    tree = ProofTree(await org_leaf_hashes(session, org_id, size))
    yield _header(str(org_id), size, public_keys or {}) + b"\n" + _checkpoint_line(signed) + b"\n"
    conn = session.driver
    encoder = RowEncoder()
    count, last = 0, -1
    while True:
        # One keyset page per COPY, read to its end: the connection is free between pages.
        stmt = (
            sa.select(
                sa.literal_column(select_list("audit_logs")),
                _SEALS.c.seq,
                sa.func.encode(_SEALS.c.leaf_hash, "hex"),
            )
            .select_from(
                _LOGS.join(
                    _SEALS,
                    sa.and_(_SEALS.c.org_id == _LOGS.c.org_id, _SEALS.c.event_id == _LOGS.c.id),
                )
            )
            .where(*conditions(org_id, filters), _SEALS.c.seq < size, _SEALS.c.seq > last)
            .order_by(_SEALS.c.seq)
            .limit(batch_size)
        )
        compiled = stmt.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
        lines = await copy_lines(
            conn, f"COPY ({compiled}) TO STDOUT (FORMAT text, NULL '')".encode(), compiled.params
        )
        if not lines:
            break
        chunk = []
        for line in lines:
            parts = split_line(line)
            seq, stored = int(parts[LINE_FIELDS]), bytes.fromhex(parts[LINE_FIELDS + 1].decode())
            canonical = encoder.canonical(parts, line)
            h = LEAF_PREFIX.copy()
            h.update(canonical)
            leaf = h.digest()
            if leaf != stored or tree.levels[0][seq] != stored:
                raise BundleError(
                    f"event {line_id(parts)} (seq {seq}) does not match its seal: "
                    "run `carelog audit verify` before exporting"
                )
            chunk.append(_event_line(seq, leaf, tree.inclusion(seq, size), canonical))
        last = int(split_line(lines[-1])[LINE_FIELDS])
        count += len(lines)
        if on_rows is not None:
            on_rows(len(lines))
        yield b"\n".join(chunk) + b"\n"
        if len(lines) < batch_size:
            break
    yield _end_line(count) + b"\n"


# --------------------------------------------------------------------------- offline
@dataclass
class BundleReport:
    org_id: str | None = None
    tree_size: int = 0
    events: int = 0
    key_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.events >= 0 and self.org_id is not None

    def summary(self) -> str:
        head = (
            f"bundle of org {self.org_id}: {self.events:,} events proven against the "
            f"checkpoint at tree size {self.tree_size:,} (key {self.key_id})"
        )
        return f"OK   {head}" if self.ok else f"FAIL {head}\n     {self.problems[0]}"


def _b64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def _hexes(values: object) -> list[bytes]:
    if not isinstance(values, list) or not all(
        isinstance(v, str) and _HEX32.fullmatch(v) for v in values
    ):
        raise ValueError("not a list of 32-byte lowercase hex hashes")
    return [bytes.fromhex(v) for v in values]


def verify_bundle(
    lines: Iterable[bytes], public_keys: Mapping[str, str] | None = None
) -> BundleReport:
    """Check a bundle with no database. ``public_keys`` pins the keys (else the header's)."""
    report = BundleReport()
    try:
        _verify(iter(lines), public_keys, report)
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"malformed bundle: {exc}")
    return report


def _verify(lines: Any, pinned: Mapping[str, str] | None, report: BundleReport) -> None:
    raw = next(lines, None)
    if raw is None:
        raise ValueError("the bundle is empty")
    header = orjson.loads(raw)
    if header.get("format") != BUNDLE_FORMAT or header.get("version") != BUNDLE_VERSION:
        raise ValueError("not a carelog audit bundle of a known version")
    org_id, size, keys = header["org_id"], header["tree_size"], header["public_keys"]
    if _header(org_id, size, keys) != raw.rstrip(b"\n"):
        raise ValueError("line 1 is not in canonical form")
    if pinned is not None:
        for key_id, key in keys.items():
            if key_id in pinned and pinned[key_id] != key:
                report.problems.append(f"the bundle's public key {key_id!r} is not the pinned one")
    keyring = VerifyingKeyring.from_public_keys(dict(pinned) if pinned is not None else keys)
    report.org_id, report.tree_size = org_id, size
    raw = next(lines, b"")
    line = orjson.loads(raw)
    if line.get("type") != "checkpoint":
        raise ValueError("line 2 must be the signed checkpoint")
    signed = SignedCheckpoint.from_json_dict(line["checkpoint"])
    if _checkpoint_line(signed) != raw.rstrip(b"\n"):
        raise ValueError("line 2 is not in canonical form")
    cp = signed.checkpoint
    report.key_id = cp.key_id
    if not keyring.verify(signed):
        report.problems.append(f"the checkpoint's signature does not verify (key {cp.key_id!r})")
    if cp.org_id != org_id or cp.tree_size != size:
        report.problems.append("the checkpoint is not the one the header names")
    count, last_seq = 0, -1
    for number, raw in enumerate(lines, start=3):
        line = orjson.loads(raw)
        kind = line.get("type")
        if kind == "end":
            if _end_line(line["events"]) != raw.rstrip(b"\n") or line["events"] != count:
                report.problems.append(f"line {number}: the trailer does not count {count} events")
            if next(lines, None) is not None:
                report.problems.append(f"line {number}: data after the trailer")
            report.events = count
            return
        if kind != "event":
            raise ValueError(f"line {number}: unknown line type {kind!r}")
        seq, proof = line["seq"], _hexes(line["proof"])
        canonical = _b64(line["canonical"])
        leaf = leaf_hash(canonical)
        if _event_line(seq, leaf, proof, canonical) != raw.rstrip(b"\n"):
            report.problems.append(
                f"line {number} (seq {seq}): altered (not the exported form of its canonical "
                "bytes and leaf hash)"
            )
            return
        if orjson.loads(canonical) != line["event"]:  # pragma: no cover - implied by the above
            report.problems.append(f"line {number}: the event differs from its canonical bytes")
            return
        if not isinstance(seq, int) or seq <= last_seq:
            report.problems.append(f"line {number}: sequence numbers must increase")
            return
        last_seq = seq
        if not verify_inclusion(leaf, seq, size, proof, cp.root_hash):
            event_id = line["event"].get("id") if isinstance(line["event"], dict) else None
            report.problems.append(
                f"line {number}: event {event_id} (seq {seq}) is not included in the "
                "signed checkpoint (inclusion proof fails)"
            )
            return
        count += 1  # noqa: SIM113 - counts verified events, not lines
    report.problems.append("the bundle is truncated: no trailer line")
