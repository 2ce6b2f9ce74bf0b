"""``carelog bench query``: keyset pages of the audit log on a large tenant.

Loads ``events`` rows into one organization (and a fifth as many into another, as noise that
the org condition must skip) with ``INSERT ... SELECT FROM generate_series`` as the admin,
ANALYZEs, then reads first and next pages through the Python read API
(``carelog.audit.query.get_audit_logs``) inside ``Scopes.org_scope(owner, org)``, i.e. as the
app role under row-level security, exactly as the audit viewer will.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from carelog.audit.filters import AuditFilters
from carelog.audit.query import get_audit_logs
from carelog.bench import BenchDatabase, bench_database, percentile
from carelog.db.session import Scopes

TARGET_P95_MS = 5.0
ACTORS = 50
SUBJECTS = 5000
SPACING_SECONDS = 2  # one event every 2 s: 1,000,000 events span about 23 days

_ACTIONS: tuple[tuple[str, str], ...] = (
    ("PROFILE_VIEWED", "profile"),
    ("APPOINTMENT_VIEWED", "appointment"),
    ("APPOINTMENT_CREATED", "appointment"),
    ("APPOINTMENT_UPDATED", "appointment"),
    ("APPOINTMENT_CANCELLED", "appointment"),
    ("MEDICAL_RECORD_VIEWED", "medical_record"),
    ("MEDICAL_RECORD_CREATED", "medical_record"),
    ("MEDICAL_RECORD_UPDATED", "medical_record"),
    ("PRESCRIPTION_VIEWED", "prescription"),
    ("LAB_RESULTS_VIEWED", "health_data"),
    ("PAYMENT_INITIATED", "payment"),
    ("PAYMENT_COMPLETED", "payment"),
    ("EVENT_TYPE_UPDATED", "event_type"),
    ("SCHEDULE_UPDATED", "schedule"),
    ("BLOCKED_DATE_ADDED", "schedule"),
    ("ORG_SETTINGS_UPDATED", "organization"),
    ("UNAUTHORIZED_ACCESS_ATTEMPT", "security"),
    ("COMPLIANCE_REPORT_GENERATED", "compliance"),
    ("google_calendar.token_refreshed", "integration"),
    ("PROFILE_UPDATED", "profile"),
)

# One statement per organization; %(…)s are bound by psycopg, the arrays are literals.
_LOAD_SQL = """
INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action, resource_type,
    resource_id, outcome, data_subject_id, old_values, new_values, metadata, ip_address,
    user_agent, request_id, created_at, source, schema_version)
SELECT gen_random_uuid(), %(org)s::uuid, %(actor_prefix)s || (i %% {actors}), 'user',
    (%(actions)s::text[])[1 + i %% {n_actions}], (%(types)s::text[])[1 + i %% {n_actions}],
    'res-' || (i %% 100000),
    CASE WHEN i %% 50 = 0 THEN 'denied' ELSE 'success' END,
    CASE WHEN i %% 3 = 0 THEN 'user_patient_' || (i %% {subjects}) END,
    NULL, NULL, '{{"via": "web"}}'::jsonb, '10.0.0.1'::inet, 'bench',
    md5(i::text), %(newest)s::timestamptz - make_interval(secs => i * {spacing}),
    'live', 1
FROM generate_series(1, %(n)s) AS i
""".format(actors=ACTORS, n_actions=len(_ACTIONS), subjects=SUBJECTS, spacing=SPACING_SECONDS)


@dataclass
class QueryResult:
    name: str
    page: str
    rows: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    scope_ms: list[float] = field(default_factory=list)

    def p(self, fraction: float) -> float:
        return percentile(sorted(self.latencies_ms), fraction)

    def scope_p(self, fraction: float) -> float:
        return percentile(sorted(self.scope_ms), fraction)


@dataclass
class QueryBenchReport:
    events: int
    noise: int
    load_seconds: float
    iterations: int
    results: list[QueryResult]


def load(bench: BenchDatabase, org: uuid.UUID, n: int, newest: datetime, actor: str) -> None:
    with psycopg.connect(bench.conninfo("admin"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # the load only, never the runtime
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(
            _LOAD_SQL,
            {
                "org": org,
                "actor_prefix": actor,
                "actions": [a for a, _ in _ACTIONS],
                "types": [t for _, t in _ACTIONS],
                "newest": newest,
                "n": n,
            },
        )


def filters_to_measure(newest: datetime) -> list[tuple[str, AuditFilters]]:
    return [
        ("no filter", AuditFilters()),
        ("action", AuditFilters(actions=("MEDICAL_RECORD_VIEWED",))),
        ("actor", AuditFilters(actor_id="user_bench_0_7")),
        ("data subject", AuditFilters(data_subject_id="user_patient_42")),
        (
            "date range (1 day)",
            AuditFilters(start=newest - timedelta(days=10), end=newest - timedelta(days=9)),
        ),
        (
            "action + date range",
            AuditFilters(
                actions=("PAYMENT_COMPLETED",),
                start=newest - timedelta(days=10),
                end=newest - timedelta(days=9),
            ),
        ),
    ]


async def measure(bench: BenchDatabase, newest: datetime, iterations: int) -> list[QueryResult]:
    scopes = Scopes(bench.database)
    owner = bench.members[0]
    results: list[QueryResult] = []
    clock = time.perf_counter
    try:
        for name, filters in filters_to_measure(newest):
            first = QueryResult(name, "first")
            following = QueryResult(name, "next")
            for iteration in range(iterations + 5):  # the first 5 warm up
                s0 = clock()
                async with scopes.org_scope(owner.user_id, owner.org_id) as session:
                    t0 = clock()
                    page = await get_audit_logs(session, owner.org_id, filters)
                    t1 = clock()
                s1 = clock()
                cursor = page.next_cursor
                n_next = 0
                if cursor is not None:
                    s2 = clock()
                    async with scopes.org_scope(owner.user_id, owner.org_id) as session:
                        t2 = clock()
                        nxt = await get_audit_logs(session, owner.org_id, filters, cursor)
                        t3 = clock()
                    s3 = clock()
                    n_next = len(nxt.items)
                if iteration < 5:
                    continue
                first.rows = len(page.items)
                first.latencies_ms.append((t1 - t0) * 1000)
                first.scope_ms.append((s1 - s0) * 1000)
                if cursor is not None:
                    following.rows = n_next
                    following.latencies_ms.append((t3 - t2) * 1000)
                    following.scope_ms.append((s3 - s2) * 1000)
            results.extend([first, following])
    finally:
        await bench.database.dispose()
    return results


def run_query_bench(
    *,
    events: int = 1_000_000,
    iterations: int = 200,
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> QueryBenchReport:
    with bench_database(database_url, orgs=2, users_per_org=2) as bench:
        org, other = bench.orgs()[:2]
        newest = datetime.now(UTC).replace(microsecond=0)
        noise = max(1, events // 5)
        echo(f"loading {events:,} events into one org and {noise:,} into another")
        start = time.perf_counter()
        load(bench, org, events, newest, "user_bench_0_")
        load(bench, other, noise, newest, "user_bench_1_")
        with psycopg.connect(bench.conninfo("admin"), autocommit=True) as conn:
            conn.execute("ANALYZE audit_logs")
        load_seconds = time.perf_counter() - start
        echo(f"loaded and analysed in {load_seconds:.1f} s; measuring")
        results = asyncio.run(measure(bench, newest, iterations))
    return QueryBenchReport(events, noise, load_seconds, iterations, results)
