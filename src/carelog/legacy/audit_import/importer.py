"""Importing legacy audit rows into ``audit_logs``: idempotent, resumable, reconciled.

Each legacy row ends in exactly one of three places, so ``source_rows = imported + quarantined
+ already_present`` for every run:

* **imported**: inserted now, as an ordinary ``audit_logs`` row with ``source='imported'``;
* **already_present**: the same event is already there (an earlier or crashed run);
* **quarantined**: it cannot be mapped; it goes to ``legacy_audit_quarantine`` with the reason.

Idempotence comes from determinism: the event id is ``uuid5(LEGACY_NAMESPACE,
f"{fingerprint}:{legacy_id}")``, ``created_at`` is the original timestamp (naive → UTC) and the
organization comes from the mapping, so a rerun produces the same primary key and the insert's
``ON CONFLICT DO NOTHING`` keeps the first copy. Each batch commits on its own: a crash loses
at most the batch in flight, and a rerun imports what is missing and counts the rest as already
present. Rows with no ``created_at`` are quarantined: an audit event is not given a time it did
not have (a run-start time would also change on every rerun and break idempotence).

Inserts run as the audit writer role (INSERT on ``audit_logs`` only) with the writer's
``INSERT ... SELECT FROM json_to_recordset`` statement, never COPY: every row gets the txid of
its batch's transaction, so the sealer puts imported events into the integrity log like any
other. Values are minimised and masked exactly like live events (``build_event``), and the same
caps apply. Quarantine and run records go through the system role.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any

import orjson
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from carelog.audit.api import log_audit_event
from carelog.audit.context import AuditContext, audit_context, normalise_ip
from carelog.audit.errors import AuditInputError
from carelog.audit.events import AuditEvent, Masker, build_event
from carelog.audit.writer import INSERT_SQL, document, to_wire
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.legacy.audit_import.mapping import IdentityResolver, Unmapped, Vocabulary
from carelog.legacy.audit_import.source import LegacyRow, LegacySource

#: Namespace of imported event ids (uuid5). Never change it: reruns depend on it.
LEGACY_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-5b7a-9c41-2e5d7f0a9b13")
IMPORT_ACTOR = "system:legacy-import"
MAX_USER_AGENT = 512


def legacy_event_id(fingerprint: str, legacy_id: int) -> uuid.UUID:
    return uuid.uuid5(LEGACY_NAMESPACE, f"{fingerprint}:{legacy_id}")


@dataclass
class ImportCounts:
    source_rows: int = 0
    imported: int = 0
    quarantined: int = 0
    already_present: int = 0
    imported_by_org: Counter[str] = field(default_factory=Counter)
    quarantine_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def handled(self) -> int:
        return self.imported + self.quarantined + self.already_present

    def adds_up(self) -> bool:
        return self.handled == self.source_rows

    def as_json(self) -> dict[str, Any]:
        return {
            "source_rows": self.source_rows,
            "imported": self.imported,
            "quarantined": self.quarantined,
            "already_present": self.already_present,
            "imported_by_org": dict(sorted(self.imported_by_org.items())),
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
        }


@dataclass
class ImportReport:
    run_id: uuid.UUID | None  # None for a dry run
    fingerprint: str
    counts: ImportCounts
    dry_run: bool
    status: str


@dataclass(frozen=True)
class Quarantined:
    legacy_id: int
    reason: str
    row: dict[str, Any]


BatchHook = Callable[[int, ImportCounts], None]


@dataclass
class LegacyAuditImporter:
    """One import of one source into one target database."""

    target: Database
    source: LegacySource
    resolver: IdentityResolver
    vocabulary: Vocabulary
    masker: Masker
    batch_size: int = 500
    dry_run: bool = False
    console: Console | None = None
    show_progress: bool = True
    on_batch: BatchHook | None = None  # called after each committed batch (tests crash here)
    started_by: str = IMPORT_ACTOR

    # ------------------------------------------------------------------ the run
    def run(self) -> ImportReport:
        if self.batch_size < 1:
            raise AuditInputError("must be at least 1", field="--batch")
        counts = ImportCounts(source_rows=self.source.count())
        with self.target.sync_engine("admin").connect() as conn:
            self.resolver.load(conn)
        run_id = None if self.dry_run else self._start_run()
        console = self.console or Console(stderr=True)
        progress = Progress(
            TextColumn("[bold]importing legacy audit rows"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.show_progress,
            transient=True,
        )
        try:
            with progress:
                task = progress.add_task("import", total=counts.source_rows)
                for number, rows in enumerate(self.source.batches(self.batch_size), start=1):
                    self._batch(rows, counts, run_id)
                    progress.advance(task, len(rows))
                    if run_id is not None:
                        self._update_run(run_id, counts, "running")
                    if self.on_batch is not None:
                        self.on_batch(number, counts)
        except BaseException:
            if run_id is not None:
                self._update_run(run_id, counts, "failed", finished=True)
            raise
        # rows added to the source while we read are counted where they ended up
        counts.source_rows = max(counts.source_rows, counts.handled)
        if run_id is not None:
            self._update_run(run_id, counts, "completed", finished=True)
        return ImportReport(
            run_id,
            self.source.fingerprint,
            counts,
            self.dry_run,
            "dry-run" if self.dry_run else "completed",
        )

    # ------------------------------------------------------------------ one batch
    def _batch(self, rows: list[LegacyRow], counts: ImportCounts, run_id: uuid.UUID | None) -> None:
        events: list[AuditEvent] = []
        quarantine: list[Quarantined] = []
        for row in rows:
            result = self.convert(row)
            if isinstance(result, AuditEvent):
                events.append(result)
            else:
                quarantine.append(result)
        by_org: dict[uuid.UUID, list[AuditEvent]] = {}
        for event in events:
            by_org.setdefault(event.org_id, []).append(event)
        if self.dry_run:
            inserted = self._count_missing(by_org)
        else:
            assert run_id is not None
            inserted = self._insert(by_org)
            self._quarantine(quarantine, run_id)
        for org, n in inserted.items():
            counts.imported += n
            counts.already_present += len(by_org[org]) - n
            if n:
                counts.imported_by_org[str(org)] += n
        counts.quarantined += len(quarantine)
        for q in quarantine:
            counts.quarantine_reasons[q.reason.split(":", 1)[0]] += 1

    def convert(self, row: LegacyRow) -> AuditEvent | Quarantined:
        """The legacy row as a new event, or the reason it cannot be one."""

        def refuse(reason: str) -> Quarantined:
            return Quarantined(row.id, reason, self.masker.scrub(row.as_json()))

        if row.created_at is None:
            return refuse("missing created_at: the original time of the event is unknown")
        identity = self.resolver.resolve(row.clerk_user_id)
        if isinstance(identity, Unmapped):
            return refuse(str(identity))
        mapped = self.vocabulary.action(row.action)
        if mapped is None:
            return refuse(f"unknown action: {row.action!r} has no home in the catalog")
        spec, outcome = mapped
        resource_type = self.vocabulary.resource_type(row.resource_type)
        if resource_type is None:
            return refuse(f"unknown resource type: {row.resource_type!r}")
        metadata: dict[str, Any] = {
            "legacy_id": row.id,
            "legacy_source": self.source.fingerprint,
            "legacy_action": row.action,
            "legacy_resource_type": row.resource_type,
            "legacy_clerk_user_id": row.clerk_user_id,
        }
        ip = normalise_ip(row.ip_address)  # garbage such as 'SYSTEM_WEBHOOK' becomes None
        if row.ip_address and ip is None:
            metadata["legacy_ip"] = row.ip_address
        agent = row.user_agent or None
        if agent is not None and len(agent) > MAX_USER_AGENT:
            agent = agent[:MAX_USER_AGENT]
            metadata["legacy_user_agent_truncated"] = True
        context = AuditContext(
            actor_id=identity.workos_user_id,
            org_id=identity.org_id,
            ip_address=ip,
            user_agent=agent,
        )
        try:
            event, _ = build_event(
                self.vocabulary.catalog,
                self.masker,
                context,
                spec.name,
                resource_type,
                row.resource_id,
                {"old_values": row.old_values, "new_values": row.new_values},
                metadata,
                outcome=outcome,
            )
        except AuditInputError as exc:
            return refuse(f"invalid data: {exc}")
        created = row.created_at
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
        return replace(
            event,
            id=legacy_event_id(self.source.fingerprint, row.id),
            created_at=created,
            request_id=None,
            source="imported",
        )

    # ------------------------------------------------------------------ storage
    def _insert(self, by_org: Mapping[uuid.UUID, list[AuditEvent]]) -> dict[uuid.UUID, int]:
        """One transaction per batch, as the writer role; returns rows inserted per org."""
        inserted: dict[uuid.UUID, int] = {}
        if not by_org:
            return inserted
        with self.target.sync_engine("writer").begin() as conn:
            for org, events in by_org.items():
                result = conn.exec_driver_sql(INSERT_SQL, (document([to_wire(e) for e in events]),))
                inserted[org] = max(result.rowcount, 0)
        return inserted

    def _count_missing(self, by_org: Mapping[uuid.UUID, list[AuditEvent]]) -> dict[uuid.UUID, int]:
        """Dry run: how many events would be new (the system role reads one org at a time)."""
        missing: dict[uuid.UUID, int] = {}
        with self.target.sync_engine("system").connect() as conn:
            for org, events in by_org.items():
                with conn.begin():
                    conn.execute(
                        sa.text("select set_config('app.org_id', :org, true)"), {"org": str(org)}
                    )
                    present = conn.execute(
                        sa.text(
                            "select count(*) from audit_logs where org_id = :org and id = any(:ids)"
                        ),
                        {"org": org, "ids": [e.id for e in events]},
                    ).scalar_one()
                missing[org] = len(events) - int(present)
        return missing

    def _quarantine(self, rows: list[Quarantined], run_id: uuid.UUID) -> None:
        if not rows:
            return
        with self.target.sync_engine("system").begin() as conn:
            conn.execute(
                sa.text(
                    "insert into legacy_audit_quarantine (source, legacy_id, reason, row, run_id) "
                    "values (:source, :legacy_id, :reason, cast(:row as jsonb), :run_id) "
                    "on conflict (source, legacy_id) do update set reason = excluded.reason, "
                    "row = excluded.row, run_id = excluded.run_id, created_at = now()"
                ),
                [
                    {
                        "source": self.source.fingerprint,
                        "legacy_id": q.legacy_id,
                        "reason": q.reason,
                        "row": orjson.dumps(q.row, default=str).decode(),
                        "run_id": run_id,
                    }
                    for q in rows
                ],
            )

    def _start_run(self) -> uuid.UUID:
        with self.target.sync_engine("system").begin() as conn:
            value = conn.execute(
                sa.text(
                    "insert into legacy_import_runs (source, started_by) "
                    "values (:source, :by) returning id"
                ),
                {"source": self.source.fingerprint, "by": self.started_by},
            ).scalar_one()
        return uuid.UUID(str(value))

    def _update_run(
        self, run_id: uuid.UUID, counts: ImportCounts, status: str, *, finished: bool = False
    ) -> None:
        with self.target.sync_engine("system").begin() as conn:
            conn.execute(
                sa.text(
                    "update legacy_import_runs set status = :status, counts = cast(:counts as "
                    "jsonb), finished_at = case when :finished then now() end where id = :id"
                ),
                {
                    "status": status,
                    "counts": orjson.dumps(counts.as_json()).decode(),
                    "finished": finished,
                    "id": run_id,
                },
            )


# --------------------------------------------------------------------------- after the run


async def record_import_run(report: ImportReport, scopes: Scopes) -> int:
    """Audit the run itself: one ``AUDIT_LOG_IMPORTED`` per organization that received events,
    written by ``system:legacy-import`` in that organization's trail. Returns how many."""
    if report.dry_run or report.run_id is None:
        return 0
    written = 0
    for org, n in sorted(report.counts.imported_by_org.items()):
        with audit_context(actor=IMPORT_ACTOR, org_id=org):
            async with scopes.system_scope(IMPORT_ACTOR, org):
                await log_audit_event(
                    "AUDIT_LOG_IMPORTED",
                    "audit_log",
                    str(report.run_id),
                    None,
                    {
                        "run_id": str(report.run_id),
                        "source": report.fingerprint,
                        "imported": n,
                        "source_rows": report.counts.source_rows,
                        "quarantined": report.counts.quarantined,
                        "already_present": report.counts.already_present,
                    },
                )
        written += 1
    return written


def reconciliation_table(report: ImportReport) -> Table:
    c = report.counts
    title = "legacy audit import" + (" (dry run: nothing written)" if report.dry_run else "")
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("Source", report.fingerprint)
    if report.run_id is not None:
        table.add_row("Run", str(report.run_id))
    table.add_row("Source rows", str(c.source_rows))
    table.add_row("Imported" if not report.dry_run else "Would import", str(c.imported))
    table.add_row("Quarantined" if not report.dry_run else "Would quarantine", str(c.quarantined))
    table.add_row("Already present", str(c.already_present))
    for reason, n in sorted(c.quarantine_reasons.items()):
        table.add_row(f"  quarantined: {reason}", str(n))
    table.add_row("Counts add up", "yes" if c.adds_up() else "NO")
    return table


__all__ = [
    "IMPORT_ACTOR",
    "LEGACY_NAMESPACE",
    "ImportCounts",
    "ImportReport",
    "LegacyAuditImporter",
    "Quarantined",
    "legacy_event_id",
    "reconciliation_table",
    "record_import_run",
]
