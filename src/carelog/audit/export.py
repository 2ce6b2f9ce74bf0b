"""Streaming exports of the audit log (JSONL, CSV, WorkOS-shaped JSON) in constant memory.

Rows come through a server-side cursor a batch at a time and leave as one ``bytes`` chunk per
batch, so an export of fifty million events holds what an export of fifty holds. Each export
is itself evidence (SOC 2: who took what, when, and why): before the first byte it gets a
durable ``AUDIT_LOG_EXPORT_STARTED`` event (fail-closed: no record, no export) and a row in
``audit_log_exports``; after the last byte ``AUDIT_LOG_EXPORTED``, or on a hang-up or error
``AUDIT_LOG_EXPORT_ABORTED``. Filters are checked against the catalog before anything is read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

import anyio
import orjson
import sqlalchemy as sa

from carelog.audit.errors import AuditInputError
from carelog.audit.export_copy import (
    CSV_HEADER,
    stream_lines,
)
from carelog.audit.filters import AuditFilters
from carelog.audit.query import (
    BATCH_SIZE,
    AuditRecord,
    stream_records,
)
from carelog.audit.sealing import erased_subjects, present
from carelog.db.schema import AuditLogExport
from carelog.db.unit import Unit

ExportFormat = Literal["jsonl", "csv", "workos"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
_EXPORTS = cast(sa.Table, AuditLogExport.__table__)
#: How long an interrupted export may take to cancel its COPY and record how it ended.
CLOSE_SECONDS = 10.0
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
        "actor": {"id": record.actor_id, "type": record.actor_type},
        "targets": [
            {"id": record.resource_id or record.resource_type, "type": record.resource_type}
        ],
        "context": {"location": record.ip_address or "", "user_agent": record.user_agent or ""},
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def _workos(records: list[AuditRecord], first: bool) -> bytes:
    body = b",\n".join(orjson.dumps(workos_event(r)) for r in records)
    if not body:
        return b""
    return (b"[\n" if first else b",\n") + body


#: The formats whose rows PostgreSQL renders and ``COPY`` streams (``export_copy``).
_RENDERED = frozenset({"jsonl", "csv"})


# --------------------------------------------------------------------------- streaming


async def stream_export(
    session: Unit,
    org_id: uuid.UUID,
    filters: AuditFilters,
    fmt: str,
    *,
    on_rows: Callable[[int], object] | None = None,
    batch_size: int = BATCH_SIZE,
) -> AsyncGenerator[bytes, None]:
    """The encoded document, one chunk per batch; records nothing (see export_audit_logs)."""
    if check_format(fmt) in _RENDERED:
        if fmt == "csv":
            yield CSV_HEADER
        # Closed here, not left to the garbage collector: the COPY holds the connection.
        copied = stream_lines(session, org_id, filters, fmt, batch_size, on_rows, CLOSE_SECONDS)
        async with aclosing(copied) as chunks:
            async for chunk in chunks:
                yield chunk
        return
    rows = 0
    async for batch in stream_records(session, org_id, filters, batch_size):
        erased = await erased_subjects(session, org_id, (r.data_subject_id for r in batch))
        if erased or any(r.schema_version >= 2 for r in batch):
            batch = [_presented(r, r.data_subject_id in erased) for r in batch]
        chunk = _workos(batch, rows == 0)
        rows += len(batch)
        if on_rows is not None:
            on_rows(len(batch))
        yield chunk
    yield b"[]\n" if rows == 0 else b"\n]\n"


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
    session: Unit,
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
    from carelog.audit.api import audit_service

    filters.check_known(audit_service().catalog)  # before anything is read or recorded
    receipt = receipt if receipt is not None else ExportReceipt()
    export_id = uuid.uuid4()
    # Durable before the first byte, outside the caller's transaction: fail-closed, so an
    # export whose intent cannot be recorded anywhere does not start at all.
    await _log(
        org_id,
        requested_by,
        "AUDIT_LOG_EXPORT_STARTED",
        export_id,
        {
            "format": fmt,
            "filters": filters.to_json_dict(),
            "reason": reason,
            "proofs": with_proofs,
        },
    )
    await _record_start(session, export_id, org_id, requested_by, filters, fmt, reason)
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
    except BaseException as exc:
        receipt.status = "aborted" if isinstance(exc, _HANG_UPS) else "failed"
        with anyio.move_on_after(CLOSE_SECONDS, shield=True):  # even while being cancelled
            await _best_effort_fail(session, export_id, receipt.row_count, receipt.status)
        _detach(
            _log(
                org_id,
                requested_by,
                "AUDIT_LOG_EXPORT_ABORTED",
                export_id,
                {
                    "format": fmt,
                    "row_count": receipt.row_count,
                    "status": receipt.status,
                    "error": type(exc).__name__,
                },
            )
        )
        raise
    await _record_end(session, export_id, receipt.row_count)
    receipt.status = "completed"
    await _log(
        org_id,
        requested_by,
        "AUDIT_LOG_EXPORTED",
        export_id,
        {
            "format": fmt,
            "filters": filters.to_json_dict(),
            "row_count": receipt.row_count,
            "reason": reason,
        },
    )


# A consumer that stops reading (an HTTP client hanging up) closes or cancels the generator.
_HANG_UPS = (GeneratorExit, asyncio.CancelledError)
_DETACHED: set[asyncio.Task[None]] = set()


def _detach(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion even though the caller is being cancelled: the web server
    cancels a hung-up response's task, and the record of the abort must outlive it."""
    task = asyncio.ensure_future(coro)
    _DETACHED.add(task)
    task.add_done_callback(_DETACHED.discard)


async def _record_start(
    session: Unit,
    export_id: uuid.UUID,
    org_id: uuid.UUID,
    requested_by: str,
    filters: AuditFilters,
    fmt: str,
    reason: str | None,
) -> None:
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


async def _record_end(session: Unit, export_id: uuid.UUID, rows: int) -> None:
    await session.execute(
        sa.update(_EXPORTS)
        .where(_X.id == export_id)
        .values(status="completed", row_count=rows, completed_at=sa.func.now())
    )


async def _best_effort_fail(session: Unit, export_id: uuid.UUID, rows: int, status: str) -> None:
    # After a database error the transaction is aborted and the row rolls back with it; after
    # a consumer stops early (GeneratorExit) the update still goes through.
    # The original error is the one worth raising, so a failure here is swallowed.
    with suppress(Exception):
        await session.execute(
            sa.update(_EXPORTS)
            .where(_X.id == export_id)
            .values(status=status, row_count=rows, completed_at=sa.func.now())
        )


async def _log(
    org_id: uuid.UUID,
    requested_by: str,
    action: str,
    export_id: uuid.UUID,
    metadata: dict[str, Any],
) -> None:
    """Record one export event in the caller's audit context, or as the requester if none.

    Imported at call time so the read modules have no import-time dependency on the write
    path (the API imports the writer and the session machinery).
    """
    from carelog.audit.api import log_audit_event
    from carelog.audit.context import audit_context, snapshot

    ctx = snapshot()
    if ctx is not None and ctx.actor_id and ctx.org_id is not None:
        await log_audit_event(action, "audit_log", str(export_id), None, metadata)
        return
    with audit_context(actor_id=requested_by, org_id=org_id):
        await log_audit_event(action, "audit_log", str(export_id), None, metadata)
