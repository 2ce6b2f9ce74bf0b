"""Importing legacy audit rows into ``audit_logs``: idempotent, resumable, reconciled.

Each legacy row ends in exactly one of three places, so ``source_rows = imported + quarantined
+ already_present`` for every run:

* **imported**: inserted now, as an ordinary ``audit_logs`` row with ``source='imported'``;
* **already_present**: the same event is already there (an earlier or crashed run);
* **quarantined**: it cannot be mapped; it goes to ``legacy_audit_quarantine`` with the reason.

A quarantined row that a later run imports (a user was added, a mapping fixed) is marked
``resolved_at``/``resolved_run_id`` in the quarantine table and counted as ``resolved``; after a
complete run the table's open rows for the source equal the run's ``quarantined`` count, and
the reconciliation says so ("Quarantine table agrees").

Idempotence comes from determinism: the event id is ``uuid5(LEGACY_NAMESPACE,
f"{fingerprint}:{legacy_id}")``, ``created_at`` is the original timestamp (naive → UTC) and the
organization comes from the mapping and the target's resources, so a rerun produces the same
primary key and the insert's ``ON CONFLICT DO NOTHING`` keeps the first copy. Each batch
commits on its own: a crash loses at most the batch in flight, and a rerun imports what is
missing and counts the rest as already present. Rows with no ``created_at`` are quarantined: an
audit event is not given a time it did not have (a run-start time would also change on every
rerun and break idempotence).

Inserts run as the maintenance role (the one role allowed ``source=imported``) with the writer's
``INSERT ... SELECT FROM json_to_recordset`` statement, never COPY: every row gets the txid of
its batch's transaction, so the sealer puts imported events into the integrity log like any
other. Values are minimised and masked exactly like live events (``build_event``), and the same
caps apply. Quarantine and run records go through the system role.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from carelog.audit.api import log_audit_event
from carelog.audit.context import audit_context
from carelog.audit.errors import AuditInputError
from carelog.audit.events import AuditEvent, Masker
from carelog.audit.wire import INSERT_SQL, document_of, wire_of
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.legacy.audit_import.convert import (
    LEGACY_NAMESPACE,
    Quarantined,
    RowConverter,
    legacy_event_id,
)
from carelog.legacy.audit_import.mapping import IdentityResolver, Vocabulary
from carelog.legacy.audit_import.source import LegacyRow, LegacySource

IMPORT_ACTOR = "system:legacy-import"


@dataclass
class ImportCounts:
    source_rows: int = 0
    imported: int = 0
    quarantined: int = 0
    already_present: int = 0
    resolved: int = 0  # quarantined by an earlier run, imported or found present by this one
    open_quarantine: int | None = None  # unresolved rows of this source after the run
    imported_by_org: Counter[str] = field(default_factory=Counter)
    quarantine_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def handled(self) -> int:
        return self.imported + self.quarantined + self.already_present

    def adds_up(self) -> bool:
        return self.handled == self.source_rows

    def table_agrees(self) -> bool:
        """The quarantine table holds exactly the rows this (complete) run quarantined."""
        return self.open_quarantine is None or self.open_quarantine == self.quarantined

    def as_json(self) -> dict[str, Any]:
        return {
            "source_rows": self.source_rows,
            "imported": self.imported,
            "quarantined": self.quarantined,
            "already_present": self.already_present,
            "resolved": self.resolved,
            "open_quarantine": self.open_quarantine,
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
    _converter: RowConverter = field(init=False)

    def __post_init__(self) -> None:
        self._converter = RowConverter(
            self.source.fingerprint, self.resolver, self.vocabulary, self.masker
        )

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
            counts.open_quarantine = self._open_quarantine()
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
        with self.target.sync_engine("admin").connect() as conn:
            self._converter.prepare(conn, rows)
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
            counts.resolved += self._resolve_quarantine(
                [int(e.metadata["legacy_id"]) for e in events if e.metadata], run_id
            )
        for org, n in inserted.items():
            counts.imported += n
            counts.already_present += len(by_org[org]) - n
            if n:
                counts.imported_by_org[str(org)] += n
        counts.quarantined += len(quarantine)
        for q in quarantine:
            counts.quarantine_reasons[q.reason.split(":", 1)[0]] += 1

    def convert(self, row: LegacyRow) -> AuditEvent | Quarantined:
        """The legacy row as a new event, or the reason it cannot be one (see ``convert``)."""
        return self._converter.convert(row)

    # ------------------------------------------------------------------ storage
    def _insert(self, by_org: Mapping[uuid.UUID, list[AuditEvent]]) -> dict[uuid.UUID, int]:
        """One transaction per batch, as the maintenance role (the only one that may insert
        events with their original time); returns rows inserted per org."""
        inserted: dict[uuid.UUID, int] = {}
        if not by_org:
            return inserted
        with self.target.sync_engine("maintenance").begin() as conn:
            for org, events in by_org.items():
                result = conn.exec_driver_sql(
                    INSERT_SQL, (document_of([wire_of(e) for e in events]),)
                )
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
                    "row = excluded.row, run_id = excluded.run_id, created_at = now(), "
                    "resolved_at = null, resolved_run_id = null"
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

    def _resolve_quarantine(self, legacy_ids: list[int], run_id: uuid.UUID) -> int:
        """Mark rows an earlier run quarantined and this one imported (or found present)."""
        if not legacy_ids:
            return 0
        with self.target.sync_engine("system").begin() as conn:
            result = conn.execute(
                sa.text(
                    "update legacy_audit_quarantine set resolved_at = now(), "
                    "resolved_run_id = :run where source = :source and resolved_at is null "
                    "and legacy_id = any(:ids)"
                ),
                {"run": run_id, "source": self.source.fingerprint, "ids": legacy_ids},
            )
        return max(result.rowcount, 0)

    def _open_quarantine(self) -> int:
        with self.target.sync_engine("system").connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "select count(*) from legacy_audit_quarantine "
                        "where source = :source and resolved_at is null"
                    ),
                    {"source": self.source.fingerprint},
                ).scalar_one()
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
        with audit_context(actor_id=IMPORT_ACTOR, org_id=org):
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
    if not report.dry_run:
        table.add_row("Resolved from quarantine", str(c.resolved))
    for reason, n in sorted(c.quarantine_reasons.items()):
        table.add_row(f"  quarantined: {reason}", str(n))
    table.add_row("Counts add up", "yes" if c.adds_up() else "NO")
    if c.open_quarantine is not None:
        table.add_row("Open in quarantine table", str(c.open_quarantine))
        table.add_row("Quarantine table agrees", "yes" if c.table_agrees() else "NO")
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
