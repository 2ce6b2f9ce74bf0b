"""``log_audit_event``: the one audit API.

Five parameters, the shape existing call sites already use: ``action, resource_type,
resource_id, changes, metadata``. Actor, organization, client address, user agent, request id
and time come from the audit context. Where the event goes depends on what it describes:

- a successful *change* made inside a unit of work (``org_scope``/``system_scope``) is inserted
  in that same transaction: it commits or rolls back with the change;
- so is a successful fail-closed *read* inside a unit that commits before anything read in it
  is disclosed (a request's unit, which ends before its response is sent): the response goes
  out only if the event committed;
- everything else (other reads, denied and failed attempts, webhooks, scripts, streaming
  responses) goes through the group-commit writer and the call returns once the event is
  durable, so a denied attempt is recorded even though its business transaction rolls back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from carelog.audit.catalog import ActionSpec, AuditCatalog, Outcome
from carelog.audit.context import AuditContext, current_context, snapshot
from carelog.audit.errors import AuditInputError
from carelog.audit.events import ERASED, AuditEvent, Masker, build_event
from carelog.audit.subject_keys import SubjectKeyStore
from carelog.audit.wire import document_of, insert_sql, wire_of
from carelog.audit.writer import AuditWriter
from carelog.core.errors import ConfigurationError
from carelog.db.session import commits_before_disclosure, current_unit

#: The writer's own statement, for an event stored in the caller's transaction: one row
#: format (``wire_of``) and one insert whichever way an event is stored.
_INSERT_IN_UNIT = sa.text(insert_sql("CAST(:doc AS json)"))

_log = logging.getLogger("carelog.audit")


@dataclass
class AuditService:
    """Everything the API needs, configured once per process."""

    catalog: AuditCatalog
    masker: Masker
    writer: AuditWriter
    #: Per-subject data keys; without a store, personal values are masked (schema 1 style).
    subject_keys: SubjectKeyStore | None = None

    async def subject_key_for(
        self,
        org_id: uuid.UUID | None,
        data_subject: object,
        changes: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> object:
        """The key to seal this event's personal values with (ERASED, a key, or None).

        Only events that name a subject *and* carry a personal field pay for the lookup.
        """
        if data_subject is None or self.subject_keys is None or org_id is None:
            return None  # without an org, build_event explains the missing context
        if not (self.masker.has_personal(changes) or self.masker.has_personal(metadata)):
            return None
        try:
            key = await self.subject_keys.get(org_id, str(data_subject))
        except ConfigurationError:
            raise  # a missing key-encryption key is a deployment error, loudly
        except Exception:  # never a storage error: the values are then masked, not sealed
            _log.warning("subject key unavailable; personal values masked instead of sealed")
            return None
        return ERASED if key is None else key

    async def start(self) -> None:
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()


_service: AuditService | None = None
_bridge_lock = threading.Lock()
_bridge: tuple[asyncio.AbstractEventLoop, threading.Thread] | None = None


def configure_audit(service: AuditService | None) -> None:
    """Install (or, with None, remove) the process-wide audit service."""
    global _service
    _service = service


@contextmanager
def installed_audit(service: AuditService) -> Iterator[AuditService]:
    """``service`` is the process's audit service for the block; the previous one after it.

    Used by the composition root (``carelog.runtime``); a library embedding carelog without it
    can call :func:`configure_audit` itself.
    """
    global _service
    previous = _service
    _service = service
    try:
        yield service
    finally:
        _service = previous


def audit_service() -> AuditService:
    if _service is None:
        raise ConfigurationError(
            "the audit service is not configured",
            hint="run inside carelog.runtime.running(...) (the web app and CLI do)",
        )
    return _service


async def log_audit_event(
    action: str,
    resource_type: str,
    resource_id: object,
    changes: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    data_subject: object = None,
    outcome: Outcome = "success",
    owner_org: uuid.UUID | None = None,
) -> AuditEvent:
    """Record one event. Returns it once it is stored (or bound to the caller's transaction).

    ``owner_org`` names the organization that owns the resource when it is not the caller's
    (a patient cancelling a clinic's appointment from their personal organization): the event
    belongs to that organization's trail, so it goes there, still attributed to the caller.
    The caller's transaction cannot write into another organization, so such an event goes
    through the writer and is durable on its own.

    Raises ``AuditInputError`` for a malformed event (unknown action, oversized metadata...),
    ``MissingAuditContextError`` without a context, and ``AuditUnavailableError`` when the
    event could be made durable nowhere (neither committed nor fsync'd to the spool): an event
    is never acknowledged from memory, so the action fails instead. Never a storage error.
    """
    service = audit_service()
    context = current_context()
    foreign = owner_org is not None and owner_org != context.org_id
    if foreign:
        context = replace(context, org_id=owner_org)
    subject_key = (
        None
        if data_subject is None
        else await service.subject_key_for(
            owner_org if foreign and owner_org is not None else _org_of_context(),
            data_subject,
            changes,
            metadata,
        )
    )
    event, spec = build_event(
        service.catalog,
        service.masker,
        context,
        action,
        resource_type,
        resource_id,
        changes,
        metadata,
        data_subject=data_subject,
        outcome=outcome,
        subject_key=subject_key,
    )
    unit = current_unit()
    if unit is not None and outcome == "success" and not foreign and _joins_unit(spec, context):
        # Inserted before the unit's next statement or with its COMMIT (no round trip of its
        # own); it commits or rolls back with the unit all the same.
        unit.defer(_INSERT_IN_UNIT, {"doc": document_of([wire_of(event)])})
        return event
    await service.writer.submit(event, fail_closed=spec.fail_closed)
    return event


def log_audit_event_sync(
    action: str,
    resource_type: str,
    resource_id: object,
    changes: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    data_subject: object = None,
    outcome: Outcome = "success",
) -> AuditEvent:
    """The same for synchronous code (scripts, sync endpoints); always via the writer."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise AuditInputError(
            "log_audit_event_sync was called from async code",
            hint="use `await log_audit_event(...)` inside a coroutine",
        )
    service = audit_service()
    loop = service.writer.loop
    if loop is None or not service.writer.running:
        loop = _bridge_loop(service.writer)
    subject_key: object = None
    if data_subject is not None:
        lookup = service.subject_key_for(_org_of_context(), data_subject, changes, metadata)
        subject_key = asyncio.run_coroutine_threadsafe(lookup, loop).result()
    event, spec = build_event(
        service.catalog,
        service.masker,
        current_context(),
        action,
        resource_type,
        resource_id,
        changes,
        metadata,
        data_subject=data_subject,
        outcome=outcome,
        subject_key=subject_key,
    )
    future: Future[None] = asyncio.run_coroutine_threadsafe(
        service.writer.submit(event, fail_closed=spec.fail_closed), loop
    )
    future.result()
    return event


def _joins_unit(spec: ActionSpec, context: AuditContext) -> bool:
    """Whether a successful event goes into the caller's own transaction.

    A change always does (it commits or rolls back with the change). A fail-closed read does
    when the unit commits before anything read in it is disclosed: the response is then sent
    only if the event committed, which is the writer's guarantee without the wait for its next
    group commit. Other reads stay with the writer (no round trip added to the caller's work)."""
    if not spec.is_read:
        return True
    return spec.fail_closed and commits_before_disclosure(context.actor_id, context.org_id)


def _org_of_context() -> uuid.UUID | None:
    ctx = snapshot()
    return None if ctx is None else ctx.org_id


def _bridge_loop(writer: AuditWriter) -> asyncio.AbstractEventLoop:
    """A background event loop for processes without one (scripts using the sync twin)."""
    global _bridge
    with _bridge_lock:
        if _bridge is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="carelog-audit-bridge", daemon=True
            )
            thread.start()
            asyncio.run_coroutine_threadsafe(writer.start(), loop).result()
            _bridge = (loop, thread)
        return _bridge[0]
