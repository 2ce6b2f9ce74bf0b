"""``carelog bench export``: the audit export against a raw ``COPY … row_to_json`` of the rows.

Loads ``events`` realistic rows (changes on a quarter, metadata that varies in keys and
nesting, IPv4 and IPv6, the writer's format 2 with a tenth of format 1, a third naming a
patient of whom one in a hundred is erased) into one organization, then exports them,
interleaved round by round:

- baseline: ``COPY (SELECT row_to_json(t) FROM audit_logs t WHERE org_id = … ORDER BY …)``
  to STDOUT on a plain psycopg connection as the app role with the owner's RLS context: what
  PostgreSQL alone needs to render and ship the same rows;
- carelog: ``export_audit_logs`` (what ``carelog audit export`` and the HTTP export run) inside
  ``Scopes.org_scope`` as the same owner, every chunk written to a sink; JSONL and CSV; the
  export's own start/end events included, as a user would pay them.

Each carelog run also reports the process's peak resident memory above its starting point
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``); a JSONL export stopped after
a tenth of its bytes gives the same figure for a tenth of the rows: constant memory means the
two peaks are alike, whatever the row count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from carelog.audit.export import export_audit_logs
from carelog.audit.filters import AuditFilters
from carelog.bench import BenchDatabase, bench_database, run_async
from carelog.runtime import Runtime

#: carelog's JSONL and CSV exports against the raw COPY of the same rows (events/s ratio).
TARGET_RATIO = 0.5

_LOAD_SQL = """
INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action, resource_type,
    resource_id, outcome, data_subject_id, old_values, new_values, metadata, ip_address,
    user_agent, request_id, created_at, source, schema_version)
SELECT gen_random_uuid(), %(org)s::uuid, 'user_bench_0_' || (i %% 40), 'user',
    (ARRAY['MEDICAL_RECORD_VIEWED', 'APPOINTMENT_UPDATED', 'PAYMENT_COMPLETED',
           'PROFILE_VIEWED'])[1 + i %% 4],
    (ARRAY['medical_record', 'appointment', 'payment', 'profile'])[1 + i %% 4],
    'res-' || (i %% 100000),
    CASE WHEN i %% 50 = 0 THEN 'denied' ELSE 'success' END,
    CASE WHEN i %% 3 = 0 THEN 'user_patient_' || (i %% 5000) END,
    CASE WHEN i %% 4 = 1 THEN jsonb_build_object('status', 'scheduled', 'duration', 30) END,
    CASE WHEN i %% 4 = 1 THEN jsonb_build_object('status', 'confirmed', 'duration', 45,
        'notes', 'moved to ' || (i %% 24) || ':00') END,
    jsonb_build_object('via', (ARRAY['web', 'api', 'viewer'])[1 + i %% 3], 'n', i,
        'amount', (i %% 997) / 100.0, 'tags', jsonb_build_array('t' || (i %% 7), i %% 2 = 0))
        || CASE WHEN i %% 5 = 0 THEN jsonb_build_object('nested', jsonb_build_object(
            'reason', 'follow-up', 'ids', jsonb_build_array(i, i + 1))) ELSE '{}' END,
    CASE WHEN i %% 2 = 0 THEN '10.0.' || (i %% 250) || '.1' ELSE '2001:db8::' || (i %% 9999)
        END::inet,
    'Mozilla/5.0 (bench ' || (i %% 13) || ')', md5(i::text),
    %(newest)s::timestamptz - make_interval(secs => i * 2), 'live',
    -- what the writer writes today (format 2), with a tenth from before sealing (format 1)
    CASE WHEN i %% 10 = 0 THEN 1 ELSE 2 END
FROM generate_series(1, %(n)s) AS i
"""
#: One patient in a hundred is erased, as in a clinic that has served erasure requests: their
#: events' lines are the ones the export must present (sealed values shown as erased).
_ERASED_SQL = """
INSERT INTO data_subjects (id, org_id, subject_id, kind, erased_at)
SELECT gen_random_uuid(), %(org)s::uuid, 'user_patient_' || k, 'workos', now()
FROM generate_series(0, 4999, 100) AS k
"""
_SET_CONTEXT = "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)"
_COPY = (
    "COPY (SELECT row_to_json(t) FROM audit_logs t WHERE org_id = {org}"
    " ORDER BY created_at DESC, id DESC) TO STDOUT"
)


@dataclass
class Run:
    label: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    bytes: int = 0
    peak_mib: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Rows per second, from the median round."""
        ordered = sorted(self.seconds)
        return self.rows / ordered[len(ordered) // 2] if ordered else 0.0


@dataclass
class ExportBenchReport:
    events: int
    load_seconds: float
    rounds: int
    baseline: Run
    runs: list[Run]

    def ratio(self, run: Run) -> float:
        return run.rate / self.baseline.rate if self.baseline.rate else 0.0


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    """Reset the peak resident size to the current one; return the current one (KiB)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def _copy_baseline(bench: BenchDatabase, org: uuid.UUID, owner: str) -> tuple[float, int]:
    start = time.perf_counter()
    size = 0
    with psycopg.connect(bench.conninfo("app")) as conn, conn.cursor() as cur:
        cur.execute(_SET_CONTEXT, (owner, str(org)))
        with cur.copy(_COPY.format(org=f"'{org}'::uuid")) as copy:
            for block in copy:
                size += len(block)
    return time.perf_counter() - start, size


async def _carelog_export(
    runtime: Runtime, org: uuid.UUID, owner: str, fmt: str, limit: int | None
) -> tuple[float, int, float]:
    filters = AuditFilters()
    base = _reset_peak()
    start = time.perf_counter()
    size = 0
    async with runtime.scopes.org_scope(owner, org) as session:
        chunks = export_audit_logs(session, org, owner, filters, fmt, reason="carelog bench export")
        async with aclosing(chunks):  # stopping early closes the export (its COPY) right here
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size >= limit:
                    break
    seconds = time.perf_counter() - start
    peak = max(0, _status_kib("VmHWM") - base) / 1024
    return seconds, size, peak


async def _measure(
    bench: BenchDatabase,
    org: uuid.UUID,
    owner: str,
    events: int,
    rounds: int,
    echo: Callable[[str], None],
) -> tuple[Run, list[Run]]:
    baseline = Run("raw COPY (SELECT row_to_json(t) …) as the app role", events)
    jsonl = Run("carelog export, JSONL", events)
    csv = Run("carelog export, CSV", events)
    runtime = Runtime(bench.database.settings, bench.database, spool_dir=bench.workdir / "spool")
    async with runtime.started():
        await _carelog_export(runtime, org, owner, "jsonl", 1 << 20)  # warm-up
        for r in range(rounds):
            echo(f"round {r + 1} of {rounds}")
            seconds, baseline.bytes = await asyncio.to_thread(_copy_baseline, bench, org, owner)
            baseline.seconds.append(seconds)
            for run, fmt in ((jsonl, "jsonl"), (csv, "csv")):
                seconds, run.bytes, peak = await _carelog_export(runtime, org, owner, fmt, None)
                run.seconds.append(seconds)
                run.peak_mib.append(peak)
        tenth = Run("carelog export, JSONL, stopped after a tenth", events // 10)
        _, tenth.bytes, peak = await _carelog_export(
            runtime, org, owner, "jsonl", jsonl.bytes // 10
        )
        tenth.peak_mib.append(peak)
    return baseline, [jsonl, csv, tenth]


def run_export_bench(
    *,
    events: int = 200_000,
    rounds: int = 3,
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> ExportBenchReport:
    with bench_database(database_url, orgs=1, users_per_org=1) as bench:
        member = bench.members[0]
        org, owner = member.org_id, member.user_id
        newest = datetime.now(UTC).replace(microsecond=0)
        echo(f"loading {events:,} events")
        start = time.perf_counter()
        with psycopg.connect(bench.conninfo("admin"), autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")  # the load only, never the runtime
            conn.execute(_LOAD_SQL, {"org": org, "newest": newest, "n": events})
            conn.execute(_ERASED_SQL, {"org": org})
            conn.execute("ANALYZE audit_logs")
        load_seconds = time.perf_counter() - start
        echo(f"loaded in {load_seconds:.1f} s; measuring")
        baseline, runs = run_async(_measure(bench, org, owner, events, rounds, echo))
    # the export's own events (started, finished) are in the table too: one row more or less
    # than ``events`` per run does not move a rate measured over this many rows.
    return ExportBenchReport(events, load_seconds, rounds, baseline, runs)
