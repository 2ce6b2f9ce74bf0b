"""Streaming exports of the audit log (JSONL, CSV, WorkOS-shaped JSON) in constant memory.

Rows come through a server-side cursor a batch at a time and leave as one ``bytes`` chunk per
batch, so an export of fifty million events holds what an export of fifty holds. Each export
is itself evidence (SOC 2: who took what, when, and why): it gets a row in
``audit_log_exports`` before the first byte and an ``AUDIT_LOG_EXPORTED`` event after the last.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit.errors import AuditInputError
from carelog.audit.filters import AuditFilters
from carelog.audit.query import BATCH_SIZE, COLUMNS, AuditRecord, stream_records
from carelog.audit.sealing import erased_subjects, present
from carelog.db.schema import AuditLogExport

ExportFormat = Literal["jsonl", "csv", "workos"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
_JSON_COLUMNS = frozenset({"old_values", "new_values", "metadata"})
_EXPORTS = cast(sa.Table, AuditLogExport.__table__)
_X = _EXPORTS.c


def check_format(fmt: str) -> ExportFormat:
    if fmt not in FORMATS:
        raise AuditInputError(
            f"unknown export format {fmt!r}", field="format", hint=f"one of {', '.join(FORMATS)}"
        )
    return fmt  # type: ignore[return-value]  # narrowed by the membership test above


# --------------------------------------------------------------------------- encoders


def workos_event(record: AuditRecord) -> dict[str, Any]:
    """The WorkOS Audit Logs event shape; everything WorkOS has no slot for goes in metadata.

    A target needs an id, so an event about a whole collection (no resource id) names the
    resource type as its target id.
    """
    metadata: dict[str, Any] = {
        "event_id": str(record.id),
        "outcome": record.outcome,
        "request_id": record.request_id,
        "data_subject_id": record.data_subject_id,
        "source": record.source,
    }
    if record.old_values is not None or record.new_values is not None:
        metadata["changes"] = {"old": record.old_values, "new": record.new_values}
    if record.metadata:
        metadata["details"] = record.metadata
    return {
        "action": record.action,
        "occurred_at": record.created_at.isoformat(),
        "version": record.schema_version,
        "actor": {"id": record.workos_user_id, "type": record.actor_type},
        "targets": [
            {"id": record.resource_id or record.resource_type, "type": record.resource_type}
        ],
        "context": {"location": record.ip_address or "", "user_agent": record.user_agent or ""},
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def _jsonl(records: list[AuditRecord], first: bool) -> bytes:
    return b"".join(orjson.dumps(r.to_json_dict()) + b"\n" for r in records)


def _csv(records: list[AuditRecord], first: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if first:
        writer.writerow(COLUMNS)
    for record in records:
        row = record.to_json_dict()
        writer.writerow(
            [
                ""
                if row[c] is None
                else orjson.dumps(row[c]).decode()
                if c in _JSON_COLUMNS
                else row[c]
                for c in COLUMNS
            ]
        )
    return buffer.getvalue().encode()


def _workos(records: list[AuditRecord], first: bool) -> bytes:
    body = b",\n".join(orjson.dumps(workos_event(r)) for r in records)
    if not body:
        return b""
    return (b"[\n" if first else b",\n") + body


_ENCODERS: dict[str, Callable[[list[AuditRecord], bool], bytes]] = {
    "jsonl": _jsonl,
    "csv": _csv,
    "workos": _workos,
}


def _closing(fmt: ExportFormat, rows: int) -> bytes:
    """What ends the document: the CSV header of an empty export, the JSON array's bracket."""
    if fmt == "csv" and rows == 0:
        return _csv([], True)
    if fmt == "workos":
        return b"[]\n" if rows == 0 else b"\n]\n"
    return b""


# --------------------------------------------------------------------------- streaming


async def stream_export(
    session: AsyncSession,
    org_id: uuid.UUID,
    filters: AuditFilters,
    fmt: str,
    *,
    on_rows: Callable[[int], object] | None = None,
    batch_size: int = BATCH_SIZE,
) -> AsyncGenerator[bytes, None]:
    """The encoded document, one chunk per batch; records nothing (see export_audit_logs)."""
    encode = _ENCODERS[check_format(fmt)]
    rows = 0
    async for batch in stream_records(session, org_id, filters, batch_size):
        erased = await erased_subjects(session, org_id, (r.data_subject_id for r in batch))
        if erased or any(r.schema_version >= 2 for r in batch):
            batch = [_presented(r, r.data_subject_id in erased) for r in batch]
        chunk = encode(batch, rows == 0)
        rows += len(batch)
        if on_rows is not None:
            on_rows(len(batch))
        yield chunk
    closing = _closing(check_format(fmt), rows)
    if closing:
        yield closing


def _presented(record: AuditRecord, erased: bool) -> AuditRecord:
    """Sealed values of an erased subject exported as "[erased]" (not as dead ciphertext)."""
    return replace(
        record,
        old_values=present(record.old_values, erased),
        new_values=present(record.new_values, erased),
        metadata=present(record.metadata, erased),
    )


@dataclass
class ExportReceipt:
    """Filled in while an export runs, for callers that need the record id or the count."""

    export_id: uuid.UUID | None = None
    row_count: int = 0
    status: str = "pending"


async def export_audit_logs(
    session: AsyncSession,
    org_id: uuid.UUID,
    requested_by: str,
    filters: AuditFilters,
    fmt: str,
    reason: str | None = None,
    on_rows: Callable[[int], object] | None = None,
    *,
    receipt: ExportReceipt | None = None,
    batch_size: int = BATCH_SIZE,
    with_proofs: bool = False,
    public_keys: Mapping[str, str] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Stream an export and record it: export row first, event last.

    ``with_proofs`` (JSON Lines only) streams a verifiable bundle instead: sealed events, each
    with its inclusion proof, plus the signed checkpoint (``carelog.audit.integrity.bundle``).

    The export row goes in before the first byte so an export that dies half way is still on
    record (as ``failed`` when we get the chance, ``started`` otherwise). The row lives in the
    caller's transaction; the event goes through the audit API, which makes it durable on its
    own, so the event survives even if the caller's transaction is later rolled back.
    """
    fmt = check_format(fmt)
    if with_proofs and fmt != "jsonl":
        raise AuditInputError("proofs come in JSON Lines bundles", field="format", hint="jsonl")
    if reason is not None and (not reason.strip() or len(reason) > 1000):
        raise AuditInputError("must be 1..1000 characters", field="reason")
    receipt = receipt if receipt is not None else ExportReceipt()
    export_id = await _record_start(session, org_id, requested_by, filters, fmt, reason)
    receipt.export_id = export_id
    receipt.status = "started"

    def count(n: int) -> None:
        receipt.row_count += n
        if on_rows is not None:
            on_rows(n)

    chunks = stream_export(session, org_id, filters, fmt, on_rows=count, batch_size=batch_size)
    if with_proofs:
        from carelog.audit.integrity.bundle import stream_bundle

        await chunks.aclose()
        chunks = stream_bundle(
            session, org_id, filters, public_keys=public_keys, batch_size=batch_size, on_rows=count
        )
    try:
        async with aclosing(chunks):  # closes the server-side cursor before anything else
            async for chunk in chunks:
                yield chunk
    except BaseException:
        receipt.status = "failed"
        await _best_effort_fail(session, export_id, receipt.row_count)
        raise
    await _record_end(session, export_id, receipt.row_count)
    receipt.status = "completed"
    await _log_exported(org_id, requested_by, export_id, fmt, filters, receipt.row_count, reason)


async def _record_start(
    session: AsyncSession,
    org_id: uuid.UUID,
    requested_by: str,
    filters: AuditFilters,
    fmt: str,
    reason: str | None,
) -> uuid.UUID:
    export_id = uuid.uuid4()
    await session.execute(
        sa.insert(_EXPORTS).values(
            id=export_id,
            org_id=org_id,
            requested_by=requested_by,
            format=fmt,
            filters=filters.to_json_dict(),
            reason=reason,
        )
    )
    return export_id


async def _record_end(session: AsyncSession, export_id: uuid.UUID, rows: int) -> None:
    await session.execute(
        sa.update(_EXPORTS)
        .where(_X.id == export_id)
        .values(status="completed", row_count=rows, completed_at=sa.func.now())
    )


async def _best_effort_fail(session: AsyncSession, export_id: uuid.UUID, rows: int) -> None:
    # After a database error the transaction is aborted and the row rolls back with it; after
    # a consumer stops early (GeneratorExit) the update still goes through.
    # The original error is the one worth raising, so a failure here is swallowed.
    with suppress(Exception):
        await session.execute(
            sa.update(_EXPORTS)
            .where(_X.id == export_id)
            .values(status="failed", row_count=rows, completed_at=sa.func.now())
        )


async def _log_exported(
    org_id: uuid.UUID,
    requested_by: str,
    export_id: uuid.UUID,
    fmt: str,
    filters: AuditFilters,
    rows: int,
    reason: str | None,
) -> None:
    """Record AUDIT_LOG_EXPORTED in the caller's audit context, or as the requester if none.

    Imported at call time so the read modules have no import-time dependency on the write
    path (the API imports the writer and the session machinery).
    """
    from carelog.audit.api import log_audit_event
    from carelog.audit.context import audit_context, snapshot

    metadata = {"format": fmt, "filters": filters.to_json_dict(), "row_count": rows}
    metadata["reason"] = reason
    ctx = snapshot()
    if ctx is not None and ctx.actor_id and ctx.org_id is not None:
        await log_audit_event("AUDIT_LOG_EXPORTED", "audit_log", str(export_id), None, metadata)
        return
    with audit_context(actor=requested_by, org_id=org_id):
        await log_audit_event("AUDIT_LOG_EXPORTED", "audit_log", str(export_id), None, metadata)
