"""``carelog bench query``: keyset pages of the audit log on a large tenant, against raw SQL.

Loads ``events`` rows into one organization (and a fifth as many into another, as noise that
the org condition must skip) with ``INSERT ... SELECT FROM generate_series`` as the admin,
ANALYZEs, then reads pages three ways, interleaved in every iteration so that load on the
machine shifts them together:

- carelog: ``get_audit_logs`` inside ``Scopes.org_scope(owner, org)`` (as the app role under
  row-level security, exactly as the API and the viewer do); timed for the statement alone and
  for the whole unit of work (BEGIN, ``set_config``, the query, row mapping, COMMIT);
- raw SQL as the app role: *the same compiled statement* on a plain psycopg connection, with
  the same RLS context set in the same transaction (statement alone, and the whole unit);
- raw SQL as the superuser (no RLS): the same statement, which bounds what RLS costs.

Pages are read at varied depths and dates: the first page, and pages starting at random
positions across the span of the rows that the filter matches (date windows move too), so no
figure comes from one page cached 200 times. Every filter is chosen so that it matches rows at
any ``--events``; a page that comes back empty is reported as a failure of the benchmark.
The target is judged on the whole unit of work, not on the statement alone.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql

from carelog.audit.filters import AuditFilters, Cursor
from carelog.audit.query import get_audit_logs, page_limit, select_events
from carelog.bench import BenchDatabase, bench_database, percentile, run_async
from carelog.db.session import Scopes

TARGET_P95_MS = 5.0
#: An owner's page through the app role (RLS) against the same statement as the superuser.
TARGET_RLS_FACTOR = 1.3
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


_LAST_ID = uuid.UUID(int=(1 << 128) - 1)
_SET_CONTEXT = "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)"
_DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]


@dataclass
class Timings:
    """Latencies in ms of one way of reading, per iteration."""

    values: list[float] = field(default_factory=list)

    def p(self, fraction: float) -> float:
        return percentile(sorted(self.values), fraction)


@dataclass
class QueryResult:
    name: str
    page: str
    rows: int = 0
    min_rows: int = -1  # the fewest rows any measured page returned
    carelog: Timings = field(default_factory=Timings)  # get_audit_logs alone
    carelog_unit: Timings = field(default_factory=Timings)  # org_scope + get_audit_logs
    raw: Timings = field(default_factory=Timings)  # the compiled statement, app role
    raw_unit: Timings = field(default_factory=Timings)  # BEGIN + set_config + it + COMMIT
    superuser: Timings = field(default_factory=Timings)  # the statement, no RLS

    def saw(self, rows: int) -> None:
        self.rows = max(self.rows, rows)
        self.min_rows = rows if self.min_rows < 0 else min(self.min_rows, rows)


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


def span_of(events: int) -> timedelta:
    """How far back the loaded events reach (one every ``SPACING_SECONDS``)."""
    return timedelta(seconds=events * SPACING_SECONDS)


def window(newest: datetime, events: int, rng: random.Random) -> tuple[datetime, datetime]:
    """A date window of 1/23 of the span (a day at 1M events), somewhere inside it."""
    span = span_of(events)
    width = span / 23
    end = newest - (span - width) * rng.random()
    return end - width, end


def filters_to_measure(
    newest: datetime, events: int, rng: random.Random
) -> list[tuple[str, Callable[[], AuditFilters]]]:
    """Each filter matches rows at any size (see ``_LOAD_SQL``: actor ``i % 50``, subject 42
    is row 42, one action in 20, one window of 1/23 of the span); date windows move."""

    def ranged(**kw: Any) -> Callable[[], AuditFilters]:
        def make() -> AuditFilters:
            start, end = window(newest, events, rng)
            return AuditFilters(start=start, end=end, **kw)

        return make

    return [
        ("no filter", lambda: AuditFilters()),
        ("action", lambda: AuditFilters(actions=("MEDICAL_RECORD_VIEWED",))),
        ("actor", lambda: AuditFilters(actor_id="user_bench_0_7")),
        ("data subject", lambda: AuditFilters(data_subject_id="user_patient_42")),
        ("date range (1/23 of span)", ranged()),
        ("action + date range", ranged(actions=("PAYMENT_COMPLETED",))),
    ]


def _compiled(org: uuid.UUID, filters: AuditFilters, cursor: Cursor | None) -> tuple[str, Any]:
    """The statement ``get_audit_logs`` issues, compiled as SQLAlchemy sends it to psycopg."""
    stmt = select_events(org, filters, cursor).limit(page_limit(filters.limit + 1))
    compiled = stmt.compile(dialect=_DIALECT)
    return str(compiled), compiled.params


def _bounds(conn: psycopg.Connection[Any], org: uuid.UUID, f: AuditFilters) -> tuple[Any, Any]:
    """Oldest and newest matching row (as the admin): where cursor positions may fall."""
    sql, params = _compiled(org, f, None)
    inner = sql.rsplit(" LIMIT ", 1)[0]
    row = conn.execute(
        f"SELECT min(created_at), max(created_at) FROM ({inner}) AS m", params
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


async def _raw(
    conn: psycopg.AsyncConnection[Any], sql: str, params: Any, context: tuple[str, str] | None
) -> tuple[float, float, int]:
    """The statement alone and the whole unit (BEGIN, context, statement, COMMIT), in ms."""
    clock = time.perf_counter
    u0 = clock()
    async with conn.transaction():
        if context is not None:
            await conn.execute(_SET_CONTEXT, context)
        t0 = clock()
        cur = await conn.execute(sql, params)
        rows = await cur.fetchall()
        t1 = clock()
    u1 = clock()
    return (t1 - t0) * 1000, (u1 - u0) * 1000, len(rows)


async def measure(
    bench: BenchDatabase, newest: datetime, events: int, iterations: int, seed: int = 15
) -> list[QueryResult]:
    scopes = Scopes(bench.database)
    owner = bench.members[0]
    org = owner.org_id
    context = (owner.user_id, str(org))
    rng = random.Random(seed)
    results: list[QueryResult] = []
    clock = time.perf_counter
    app = await psycopg.AsyncConnection.connect(bench.conninfo("app"))
    admin = await psycopg.AsyncConnection.connect(bench.conninfo("admin"))
    try:
        with psycopg.connect(bench.conninfo("admin")) as sync_admin:
            for name, make in filters_to_measure(newest, events, rng):
                for page in ("first", "deeper"):
                    result = QueryResult(name, page)
                    for iteration in range(iterations + 5):  # the first 5 warm up
                        filters = make()
                        position = None
                        if page == "deeper":
                            oldest, youngest = _bounds(sync_admin, org, filters)
                            if oldest is None:
                                result.saw(0)
                                continue
                            at = youngest - (youngest - oldest) * 0.9 * rng.random()
                            position = Cursor(at + timedelta(microseconds=1), _LAST_ID)
                        token = None if position is None else position.encode(filters)
                        s0 = clock()
                        async with scopes.org_scope(owner.user_id, org) as session:
                            t0 = clock()
                            got = await get_audit_logs(session, org, filters, token)
                            t1 = clock()
                        s1 = clock()
                        sql, params = _compiled(org, filters, position)
                        raw, raw_unit, n_raw = await _raw(app, sql, params, context)
                        su, _, n_su = await _raw(admin, sql, params, None)
                        if iteration < 5:
                            continue
                        if not n_raw == min(n_su, filters.limit + 1):
                            raise AssertionError(f"{name}: app role and superuser disagree")
                        result.saw(len(got.items))
                        result.carelog.values.append((t1 - t0) * 1000)
                        result.carelog_unit.values.append((s1 - s0) * 1000)
                        result.raw.values.append(raw)
                        result.raw_unit.values.append(raw_unit)
                        result.superuser.values.append(su)
                    results.append(result)
    finally:
        await app.close()
        await admin.close()
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
        results = run_async(measure(bench, newest, events, iterations))
    return QueryBenchReport(events, noise, load_seconds, iterations, results)
