"""``carelog bench audit``: the group-commit writer against its two yardsticks.

Three ways to store the same events, on one PostgreSQL, in one run:

(a) the reference's approach: one transaction per event that sets the RLS context and inserts
    one row as the app role, sequentially (measured on a smaller sample: it is slow);
(b) one raw ``COPY`` of the rows as the admin: the practical limit of the server;
(c) carelog: ``log_audit_event`` under 1, 16 and 256 concurrent producers, plus the writer alone
    (``AuditWriter.submit`` of prebuilt events) to separate event building from storage.

Every call of (c) returns only once its event is committed (or fsync'd to the spool; the
report counts spooled events so a run that fell back to the spool is visible).

On the embedded server (no ``--database-url``) the run raises ``max_wal_size`` and
``checkpoint_timeout`` (:data:`EMBEDDED_SERVER_SETTINGS`) so that no checkpoint starts in the
middle of a measured run: with the defaults (1 GB, 5 min) the WAL of the ~300k rows written
before the 256-producer run triggers one, and the checkpoint's writes plus the full-page images
that follow it slowed whichever run it fell into by a third and put a 50+ ms tail on its
latencies. This is ordinary server sizing for a write-heavy load, and all runs get the same
server; durability is untouched (``fsync`` and ``synchronous_commit`` stay on). A server given
with ``--database-url`` is used as it is configured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from carelog.audit.api import AuditService, log_audit_event
from carelog.audit.context import audit_context
from carelog.audit.events import AuditEvent, build_event
from carelog.audit.setup import create_audit_service
from carelog.audit.writer import COLUMNS, to_wire
from carelog.bench import BenchDatabase, Member, bench_database, percentile
from carelog.platform.audit_catalog import build_catalog
from carelog.runtime import Runtime

PRODUCER_LEVELS: tuple[int, ...] = (1, 16, 256)
#: Server settings applied to the embedded benchmark server only (see the module docstring).
EMBEDDED_SERVER_SETTINGS: dict[str, str] = {"max_wal_size": "16GB", "checkpoint_timeout": "1h"}
#: Targets from the issue: writer throughput vs raw COPY and vs the reference; p99 latency.
TARGET_COPY_SHARE = 0.50
TARGET_REFERENCE_FACTOR = 25.0
TARGET_P99_MS = 25.0

# A realistic mix: reads and writes of several kinds, some about a data subject.
_MIX: tuple[tuple[str, str], ...] = (
    ("PROFILE_VIEWED", "profile"),
    ("APPOINTMENT_VIEWED", "appointment"),
    ("APPOINTMENT_CREATED", "appointment"),
    ("EVENT_TYPE_UPDATED", "event_type"),
    ("COMPLIANCE_REPORT_GENERATED", "compliance"),
    ("UNAUTHORIZED_ACCESS_ATTEMPT", "security"),
    ("SCHEDULE_UPDATED", "schedule"),
    ("PAYMENT_COMPLETED", "payment"),
)


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)


def _call_args(i: int) -> tuple[str, str, str, dict[str, Any], Any]:
    action, resource_type = _MIX[i % len(_MIX)]
    metadata = {"via": "web", "page": i % 10}
    subject = f"user_patient_{i % 97}" if i % 3 == 0 else None
    return action, resource_type, f"res-{i}", metadata, subject


def prebuilt_events(service: AuditService, members: Sequence[Member], n: int) -> list[AuditEvent]:
    """Events exactly as ``log_audit_event`` would build them (for the storage-only runs)."""
    events: list[AuditEvent] = []
    for i in range(n):
        member = members[i % len(members)]
        action, resource_type, resource_id, metadata, subject = _call_args(i)
        with audit_context(
            actor=member.user_id, org_id=member.org_id, ip_address="10.1.2.3", user_agent="bench"
        ) as ctx:
            event, _ = build_event(
                service.catalog,
                service.masker,
                ctx,
                action,
                resource_type,
                resource_id,
                None,
                metadata,
                data_subject=subject,
            )
        events.append(event)
    return events


def tune_embedded_server(bench: BenchDatabase) -> str:
    """Apply :data:`EMBEDDED_SERVER_SETTINGS` (a throwaway server: ALTER SYSTEM is fine)."""
    with psycopg.connect(bench.conninfo("admin"), autocommit=True) as conn:
        for name, value in EMBEDDED_SERVER_SETTINGS.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)  # the checkpointer rereads its settings on SIGHUP
        shown = []
        for name in (*EMBEDDED_SERVER_SETTINGS, "fsync", "synchronous_commit"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            shown.append(f"{name}={row[0] if row else '?'}")
    return ", ".join(shown)


# --------------------------------------------------------------------------- (a) the reference
_REFERENCE_INSERT = (
    "INSERT INTO audit_logs ("
    + ", ".join(name for name, _ in COLUMNS)
    + ") VALUES ("
    + ", ".join(f"%s::{kind}" for _, kind in COLUMNS)
    + ")"
)


_SET_CONTEXT = "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)"


def run_reference(bench: BenchDatabase, rows: Sequence[dict[str, Any]]) -> Result:
    """One transaction per event, context first, as the app role, one after the other."""
    names = [name for name, _ in COLUMNS]
    with psycopg.connect(bench.conninfo("app")) as conn:
        start = time.perf_counter()
        for row in rows:
            with conn.transaction():
                conn.execute(
                    _SET_CONTEXT,
                    (row["workos_user_id"], row["org_id"]),
                )
                conn.execute(_REFERENCE_INSERT, [row[n] for n in names])
        seconds = time.perf_counter() - start
    return Result("(a) reference: 1 tx/event, app role", len(rows), seconds)


# --------------------------------------------------------------------------- (b) raw COPY
def run_copy(bench: BenchDatabase, rows: Sequence[dict[str, Any]]) -> Result:
    """All rows in one COPY as the admin (a superuser bypasses RLS: the server's limit)."""
    names = [name for name, _ in COLUMNS]
    copy_sql = f"COPY audit_logs ({', '.join(names)}) FROM STDIN"
    with psycopg.connect(bench.conninfo("admin")) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row([row[n] for n in names])
        conn.commit()
        seconds = time.perf_counter() - start
    return Result("(b) raw COPY as admin", len(rows), seconds)


# --------------------------------------------------------------------------- (c) carelog
async def _timed_producers(
    producers: int,
    total: int,
    make_call: Callable[[int], Awaitable[None]],
    members: Sequence[Member],
) -> tuple[float, list[float]]:
    """Run ``total`` calls from ``producers`` tasks; wall time and every call's latency (ms)."""
    latencies: list[float] = []
    per = [total // producers + (1 if p < total % producers else 0) for p in range(producers)]
    gate = asyncio.Event()

    async def producer(p: int, count: int) -> None:
        member = members[p % len(members)]
        record = latencies.append
        clock = time.perf_counter
        with audit_context(
            actor=member.user_id, org_id=member.org_id, ip_address="10.1.2.3", user_agent="bench"
        ):
            await gate.wait()
            for k in range(count):
                t0 = clock()
                await make_call(p + k * producers)
                record((clock() - t0) * 1000.0)

    tasks = [asyncio.create_task(producer(p, c)) for p, c in enumerate(per)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    gate.set()
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, latencies


async def run_log_audit_event(
    service: AuditService, members: Sequence[Member], producers: int, total: int
) -> Result:
    """``log_audit_event`` from ``producers`` tasks, each inside its own audit context."""

    async def call(i: int) -> None:
        action, resource_type, resource_id, metadata, subject = _call_args(i)
        await log_audit_event(
            action, resource_type, resource_id, None, metadata, data_subject=subject
        )

    seconds, latencies = await _timed_producers(producers, total, call, members)
    latencies.sort()
    return Result(f"(c) log_audit_event, {producers} producers", total, seconds, latencies)


async def run_writer_only(
    service: AuditService,
    events: Sequence[AuditEvent],
    producers: int,
    members: Sequence[Member],
) -> Result:
    """``AuditWriter.submit`` of prebuilt events: storage without event building."""
    writer = service.writer

    async def call(i: int) -> None:
        await writer.submit(events[i])

    seconds, latencies = await _timed_producers(producers, len(events), call, members)
    latencies.sort()
    return Result(
        f"(c) writer alone (submit), {producers} producers", len(events), seconds, latencies
    )


# --------------------------------------------------------------------------- the whole run
@dataclass
class AuditBenchReport:
    reference: Result
    copy: Result
    carelog: list[Result]
    writer_stats: dict[str, Any]


async def _carelog_runs(
    bench: BenchDatabase, events: int, single_events: int, echo: Callable[[str], None]
) -> tuple[list[Result], dict[str, Any]]:
    runtime = Runtime(bench.database.settings, bench.database, spool_dir=bench.workdir / "spool")
    service = runtime.audit
    results: list[Result] = []
    async with runtime.started():
        prebuilt = prebuilt_events(service, bench.members, events)
        # warm-up: connection, prepared statement, code paths
        await run_writer_only(
            service, prebuilt_events(service, bench.members, 2000), 64, bench.members
        )
        echo(f"writer alone: {events:,} prebuilt events, 256 producers")
        results.append(await run_writer_only(service, prebuilt, 256, bench.members))
        del prebuilt
        for producers in PRODUCER_LEVELS:
            n = min(events, single_events) if producers == 1 else events
            echo(f"log_audit_event: {n:,} events, {producers} producers")
            result = await run_log_audit_event(service, bench.members, producers, n)
            if n != events:
                result.note = f"latency-bound: {n:,}-event sample"
            results.append(result)
    return results, service.writer.stats.as_dict()


def run_audit_bench(
    *,
    events: int = 100_000,
    reference_events: int = 5_000,
    single_events: int = 2_000,
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> AuditBenchReport:
    with bench_database(database_url) as bench:
        if database_url is None:
            echo(f"embedded server: {tune_embedded_server(bench)}")
        echo("building rows")
        service = create_audit_service(
            bench.database, build_catalog(), spool_dir=bench.workdir / "spool-rows"
        )
        ref_rows = [to_wire(e) for e in prebuilt_events(service, bench.members, reference_events)]
        echo(f"(a) reference: {reference_events:,} events, one transaction each")
        reference = run_reference(bench, ref_rows)
        del ref_rows
        copy_rows = [to_wire(e) for e in prebuilt_events(service, bench.members, events)]
        echo(f"(b) raw COPY: {events:,} events")
        copy = run_copy(bench, copy_rows)
        del copy_rows
        service.writer.spool.close()
        carelog, stats = asyncio.run(_carelog_runs(bench, events, single_events, echo))
    return AuditBenchReport(reference, copy, carelog, stats)
