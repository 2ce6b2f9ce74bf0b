"""``carelog bench audit``: the group-commit writer against two honest yardsticks.

Three ways to store the same events, on one PostgreSQL, in one run:

(a) the reference's approach, *at the same concurrency*: one transaction per event that sets
    the RLS context and inserts one row as the app role, from 1, 16 and 256 concurrent
    producers sharing up to :data:`REFERENCE_MAX_CONNECTIONS` connections (a serial reference
    against 256 concurrent producers would credit the writer with what mere concurrency buys);
(b) raw ``COPY`` of the rows as the admin, on as many connections as the writer has lanes
    (:data:`carelog.audit.writer.LANES`): the practical limit of the server for that many
    connections;
(c) carelog: ``log_audit_event`` under 1, 16 and 256 concurrent producers, plus the writer alone
    (``AuditWriter.submit`` of prebuilt events) to separate event building from storage.

Every run uses the same realistic mix (:mod:`carelog.bench.mix`: changes on writes, varied and
nested metadata, sensitive fields), so minimising, masking and serialisation are part of what is
measured. A (c) call returns once its event is committed or fsync'd to the spool; only
*committed* events count as throughput (the writer's counters, before and after each run), and
spooled ones are reported beside them. Next to events/s every run reports CPU per event: this
process's (Python) and the server's (PostgreSQL, :mod:`carelog.bench.cpu`), so a run cannot look
fast by shifting work onto the other core.

On the embedded server (no ``--database-url``) the run raises ``max_wal_size`` and
``checkpoint_timeout`` (:data:`EMBEDDED_SERVER_SETTINGS`) so that no checkpoint starts in the
middle of a measured run (a checkpoint's writes and the full-page images after it slowed
whichever run it fell into by a third). This is ordinary sizing for a write-heavy server, all
runs get the same server, and durability is untouched (``fsync`` and ``synchronous_commit`` stay
on). A server given with ``--database-url`` is used as it is configured.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from carelog.audit.api import AuditService, log_audit_event
from carelog.audit.context import audit_context
from carelog.audit.events import AuditEvent, build_event
from carelog.audit.setup import create_audit_service
from carelog.audit.wire import COLUMNS, wire_of
from carelog.audit.writer import LANES
from carelog.bench import BenchDatabase, Member, bench_database, percentile, run_async
from carelog.bench.cpu import CpuUse, ServerCpu, measure_cpu
from carelog.bench.mix import call_args
from carelog.platform.audit_catalog import build_catalog
from carelog.runtime import Runtime

PRODUCER_LEVELS: tuple[int, ...] = (1, 16, 256)
#: The reference's connections at most (the server's max_connections bounds any real pool).
REFERENCE_MAX_CONNECTIONS = 64
#: Server settings applied to the embedded benchmark server only (see the module docstring).
EMBEDDED_SERVER_SETTINGS: dict[str, str] = {"max_wal_size": "16GB", "checkpoint_timeout": "1h"}
#: Targets: writer throughput vs raw COPY and vs the reference at the same concurrency; p99.
TARGET_COPY_SHARE = 0.50
TARGET_REFERENCE_FACTOR = 10.0
TARGET_P99_MS = 25.0


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    note: str = ""
    producers: int = 0
    spooled: int = 0
    cpu: CpuUse | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def cpu_us(self) -> tuple[float, float | None]:
        return (float("nan"), None) if self.cpu is None else self.cpu.per_event_us(self.events)


def prebuilt_events(service: AuditService, members: Sequence[Member], n: int) -> list[AuditEvent]:
    """Events exactly as ``log_audit_event`` would build them (for the storage-only runs)."""
    events: list[AuditEvent] = []
    for i in range(n):
        member = members[i % len(members)]
        action, resource_type, resource_id, changes, metadata, subject = call_args(i)
        with audit_context(
            actor_id=member.user_id, org_id=member.org_id, ip_address="10.1.2.3", user_agent="bench"
        ) as ctx:
            event, _ = build_event(
                service.catalog,
                service.masker,
                ctx,
                action,
                resource_type,
                resource_id,
                changes,
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
_NAMES = [name for name, _ in COLUMNS]
_JSON_COLUMNS = frozenset(name for name, kind in COLUMNS if kind == "jsonb")


def baseline_row(event: AuditEvent) -> dict[str, Any]:
    """The event's column values as text, for the baselines' plain INSERT and COPY: the
    writer's wire body with the JSON columns serialised (what a hand-written client sends)."""
    row: dict[str, Any] = orjson.loads(wire_of(event))
    for name in _JSON_COLUMNS:
        if row[name] is not None:
            row[name] = orjson.dumps(row[name]).decode()
    row["schema_version"] = str(row["schema_version"])
    return row


_REFERENCE_INSERT = (
    "INSERT INTO audit_logs ("
    + ", ".join(_NAMES)
    + ") VALUES ("
    + ", ".join(f"%s::{kind}" for _, kind in COLUMNS)
    + ")"
)
_SET_CONTEXT = "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)"


async def _reference(conninfo: str, rows: Sequence[dict[str, Any]], producers: int) -> float:
    connections = min(producers, REFERENCE_MAX_CONNECTIONS)
    conns = [await psycopg.AsyncConnection.connect(conninfo) for _ in range(connections)]
    free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)
    todo = iter(rows)

    async def producer() -> None:
        for row in todo:  # one shared iterator: every row is inserted exactly once
            conn = await free.get()
            try:
                async with conn.transaction():
                    await conn.execute(_SET_CONTEXT, (row["workos_user_id"], row["org_id"]))
                    await conn.execute(_REFERENCE_INSERT, [row[n] for n in _NAMES])
            finally:
                free.put_nowait(conn)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        return time.perf_counter() - start
    finally:
        for conn in conns:
            await conn.close()


def run_reference(
    bench: BenchDatabase, rows: Sequence[dict[str, Any]], producers: int, server: ServerCpu
) -> Result:
    """One transaction per event, context first, as the app role, from ``producers`` tasks."""
    with measure_cpu(server) as cpu:
        seconds = run_async(_reference(bench.conninfo("app"), rows, producers))
    connections = min(producers, REFERENCE_MAX_CONNECTIONS)
    return Result(
        f"(a) reference: 1 tx/event, {producers} producers",
        len(rows),
        seconds,
        note=f"{connections} connection{'s' if connections > 1 else ''}",
        producers=producers,
        cpu=cpu,
    )


# --------------------------------------------------------------------------- (b) raw COPY
def run_copy(
    bench: BenchDatabase, rows: Sequence[dict[str, Any]], server: ServerCpu, lanes: int = LANES
) -> Result:
    """The rows in ``lanes`` parallel COPYs as the admin (the writer's number of connections;
    a superuser bypasses RLS: the server's limit)."""
    copy_sql = f"COPY audit_logs ({', '.join(_NAMES)}) FROM STDIN"
    shares = [rows[k::lanes] for k in range(lanes)]
    conns = [psycopg.connect(bench.conninfo("admin")) for _ in range(lanes)]
    gate = threading.Barrier(lanes + 1)
    errors: list[BaseException] = []

    def lane(conn: psycopg.Connection[Any], share: Sequence[dict[str, Any]]) -> None:
        try:
            gate.wait()
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in share:
                    copy.write_row([row[n] for n in _NAMES])
            conn.commit()
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=a) for a in zip(conns, shares, strict=True)]
    for thread in threads:
        thread.start()
    try:
        with measure_cpu(server) as cpu:
            gate.wait()
            start = time.perf_counter()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - start
    finally:
        for conn in conns:
            conn.close()
    if errors:
        raise errors[0]
    return Result(
        f"(b) raw COPY as admin, {lanes} connections", len(rows), seconds, producers=lanes, cpu=cpu
    )


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
            actor_id=member.user_id, org_id=member.org_id, ip_address="10.1.2.3", user_agent="bench"
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


async def _counted(
    service: AuditService,
    server: ServerCpu | None,
    name: str,
    producers: int,
    total: int,
    call: Callable[[int], Awaitable[None]],
    members: Sequence[Member],
) -> Result:
    """One measured run; only the events the writer *committed* meanwhile count."""
    stats = service.writer.stats
    committed, spooled = stats.committed, stats.spooled
    with measure_cpu(server) as cpu:
        seconds, latencies = await _timed_producers(producers, total, call, members)
    latencies.sort()
    result = Result(name, stats.committed - committed, seconds, latencies, producers=producers)
    result.spooled = stats.spooled - spooled
    result.cpu = cpu
    if result.spooled:
        result.note = f"{result.spooled:,} spooled (not counted)"
    return result


async def run_log_audit_event(
    service: AuditService,
    members: Sequence[Member],
    producers: int,
    total: int,
    server: ServerCpu | None = None,
) -> Result:
    """``log_audit_event`` from ``producers`` tasks, each inside its own audit context."""

    async def call(i: int) -> None:
        action, resource_type, resource_id, changes, metadata, subject = call_args(i)
        await log_audit_event(
            action, resource_type, resource_id, changes, metadata, data_subject=subject
        )

    name = f"(c) log_audit_event, {producers} producers"
    return await _counted(service, server, name, producers, total, call, members)


async def run_writer_only(
    service: AuditService,
    events: Sequence[AuditEvent],
    producers: int,
    members: Sequence[Member],
    server: ServerCpu | None = None,
) -> Result:
    """``AuditWriter.submit`` of prebuilt events: storage without event building."""
    writer = service.writer

    async def call(i: int) -> None:
        await writer.submit(events[i])

    name = f"(c) writer alone (submit), {producers} producers"
    return await _counted(service, server, name, producers, len(events), call, members)


# --------------------------------------------------------------------------- the whole run
@dataclass
class AuditBenchReport:
    references: list[Result]
    copy: Result
    carelog: list[Result]
    writer_stats: dict[str, Any]

    def reference_for(self, producers: int) -> Result:
        """The reference run at the same concurrency (the nearest level below otherwise)."""
        fitting = [r for r in self.references if r.producers <= producers]
        return max(fitting or self.references, key=lambda r: r.producers)


async def _carelog_runs(
    bench: BenchDatabase,
    events: int,
    single_events: int,
    server: ServerCpu,
    echo: Callable[[str], None],
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
        results.append(await run_writer_only(service, prebuilt, 256, bench.members, server))
        del prebuilt
        for producers in PRODUCER_LEVELS:
            n = min(events, single_events) if producers == 1 else events
            echo(f"log_audit_event: {n:,} events, {producers} producers")
            result = await run_log_audit_event(service, bench.members, producers, n, server)
            if n != events:
                result.note = (result.note + "; " if result.note else "") + (
                    f"latency-bound: {n:,}-event sample"
                )
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
        server = ServerCpu(bench.conninfo("admin"))
        echo("building rows")
        service = create_audit_service(
            bench.database, build_catalog(), spool_dir=bench.workdir / "spool-rows"
        )
        references: list[Result] = []
        for producers in PRODUCER_LEVELS:
            n = min(reference_events, single_events) if producers == 1 else reference_events
            rows = [baseline_row(e) for e in prebuilt_events(service, bench.members, n)]
            echo(f"(a) reference: {n:,} events, one transaction each, {producers} producers")
            references.append(run_reference(bench, rows, producers, server))
        copy_rows = [baseline_row(e) for e in prebuilt_events(service, bench.members, events)]
        echo(f"(b) raw COPY: {events:,} events on {LANES} connections")
        copy = run_copy(bench, copy_rows, server)
        del copy_rows
        service.writer.spool.close()
        carelog, stats = run_async(_carelog_runs(bench, events, single_events, server, echo))
    return AuditBenchReport(references, copy, carelog, stats)
