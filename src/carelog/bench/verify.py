"""``carelog bench verify``: full verification against streaming and hashing the same rows.

Loads ``events`` rows into one organization as the admin (``INSERT … SELECT generate_series``,
one transaction per 10,000 rows, like group commits) with **varied** content: every event has
its own metadata (page, session, timing, tags), a quarter carry changes (old and new values),
one in twenty a decimal amount, IPv4 and IPv6 addresses vary, so no memo of repeated values
can hit. The real sealer seals them, then, in each of ``rounds`` rounds and for one worker and
for ``workers`` workers:

* ``verify_org`` as the system role: a full verification (every leaf re-hashed from the stored
  row and compared, every root, signature and link);
* the baseline, on the same number of processes: stream the same rows from PostgreSQL (the
  stored columns, same role, same RLS context, same order, same split) and SHA-256 each one
  into a leaf hash, nothing else. What verification adds is canonicalisation and comparison.

The target is verify ≥ :data:`TARGET_RATIO` times the baseline.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256

import psycopg
from psycopg import sql

from carelog.audit.integrity.checkpoint import SigningKeyring, generate_key
from carelog.audit.integrity.rows import EVENT_FIELDS, SEALING_ORDER
from carelog.audit.integrity.sealer import Sealer
from carelog.audit.integrity.verify import VerifyReport, verify_org
from carelog.audit.integrity.workers import plan_sql
from carelog.bench import BenchDatabase, bench_database, run_async
from carelog.bench.query import _ACTIONS
from carelog.db.session import Scopes

TARGET_RATIO = 0.7
LOAD_BATCH = 10_000
ACTOR = "system:bench-verify"

# Varied on purpose (see the module docstring); ``{done}`` shifts each batch's timestamps.
_LOAD_SQL = """
INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action, resource_type,
    resource_id, outcome, data_subject_id, old_values, new_values, metadata, ip_address,
    user_agent, request_id, created_at, source, schema_version)
SELECT gen_random_uuid(), %(org)s::uuid, 'user_bench_' || (k %% 50), 'user',
    (%(actions)s::text[])[1 + k %% %(n_actions)s::int],
    (%(types)s::text[])[1 + k %% %(n_actions)s::int],
    'res-' || k,
    CASE WHEN k %% 50 = 0 THEN 'denied' ELSE 'success' END,
    CASE WHEN k %% 3 = 0 THEN 'user_patient_' || (k %% 4999) END,
    CASE WHEN k %% 4 = 0 THEN jsonb_build_object('status', 'scheduled', 'slot', k %% 96,
        'notes', 'masked:hmac-sha256:' || left(md5(k::text), 16)) END,
    CASE WHEN k %% 4 = 0 THEN jsonb_build_object('status', 'confirmed', 'slot', (k + 7) %% 96,
        'notes', 'masked:hmac-sha256:' || left(md5((k + 1)::text), 16)) END,
    jsonb_build_object('via', CASE WHEN k %% 2 = 0 THEN 'web' ELSE 'api' END, 'page', k,
        'session', left(md5(k::text || 's'), 12), 'ms', k %% 997,
        'tags', jsonb_build_array('t' || (k %% 7), 't' || (k %% 11)))
      || CASE WHEN k %% 20 = 0 THEN jsonb_build_object('amount', (k %% 100000) / 100.0)
         ELSE '{}'::jsonb END,
    CASE WHEN k %% 10 = 0 THEN ('2001:db8::' || to_hex(k %% 65536))::inet
         ELSE ('10.' || (k >> 16) %% 256 || '.' || (k >> 8) %% 256 || '.' || k %% 256)::inet END,
    'Mozilla/5.0 (bench ' || (k %% 100) || ')', md5(k::text),
    %(newest)s::timestamptz - make_interval(secs => k * 2), 'live', 1
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS k
"""


@dataclass
class Pass:
    """One timed pass: events and seconds."""

    name: str
    workers: int
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Round:
    verify: list[Pass] = field(default_factory=list)
    baseline: list[Pass] = field(default_factory=list)
    reports: list[VerifyReport] = field(default_factory=list)

    def ratio(self, i: int) -> float:
        base = self.baseline[i].rate
        return self.verify[i].rate / base if base else 0.0


@dataclass
class VerifyBenchReport:
    events: int
    load_seconds: float
    seal_seconds: float
    rounds: list[Round]

    @property
    def seal_rate(self) -> float:
        return self.events / self.seal_seconds if self.seal_seconds else 0.0


def load_varied(bench: BenchDatabase, org: uuid.UUID, n: int) -> float:
    start = time.perf_counter()
    newest = datetime.now(UTC)
    with psycopg.connect(bench.conninfo("admin"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # the load only, never the runtime
        for first in range(1, n + 1, LOAD_BATCH):
            conn.execute(
                _LOAD_SQL,
                {
                    "org": org,
                    "actions": [a for a, _ in _ACTIONS],
                    "types": [t for _, t in _ACTIONS],
                    "n_actions": len(_ACTIONS),
                    "newest": newest,
                    "first": first,
                    "last": min(n, first + LOAD_BATCH - 1),
                },
            )
        conn.execute("ANALYZE audit_logs")
    return time.perf_counter() - start


# --------------------------------------------------------------------------- the baseline
_STORED_COLUMNS = ", ".join(f'e."{c}"' for c in EVENT_FIELDS)


def _cut_keys(conninfo: str, org: uuid.UUID, n: int, workers: int) -> list[tuple[object, ...]]:
    """Sealing keys where each range after the first starts (the events at n*k/workers)."""
    keys = []
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)",
            (ACTOR, str(org)),
        )
        for k in range(1, workers):
            row = conn.execute(
                f"SELECT e.txid, e.created_at, e.id FROM audit_logs e WHERE e.org_id = %s "
                f"ORDER BY {SEALING_ORDER} OFFSET %s LIMIT 1",
                (org, n * k // workers),
            ).fetchone()
            assert row is not None
            keys.append(tuple(row))
    return keys


def _baseline_statement(
    org: uuid.UUID, lo: tuple[object, ...] | None, hi: tuple[object, ...] | None
) -> sql.Composed:
    key = f"({SEALING_ORDER})"
    parts: list[sql.Composable] = [
        sql.SQL(f"COPY (SELECT {_STORED_COLUMNS} FROM audit_logs e WHERE e.org_id = "),
        sql.Literal(str(org)),
    ]
    for bound, op in ((lo, ">="), (hi, "<")):
        if bound is not None:
            parts.append(
                sql.SQL(
                    f" AND {key} {op} (({{}})::bigint, ({{}})::timestamptz, ({{}})::uuid)"
                ).format(*(sql.Literal(v) for v in bound))
            )
    parts.append(sql.SQL(f" ORDER BY {SEALING_ORDER}) TO STDOUT"))
    return sql.Composed(parts)


def _stream_and_hash(job: tuple[str, str, bytes]) -> int:
    """One range: stream the stored columns and SHA-256 each row into a leaf hash."""
    conninfo, org, statement = job
    n = 0
    base = sha256(b"\x00")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(
            "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)",
            (ACTOR, org),
        )
        for setting in plan_sql():
            conn.execute(setting)
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for data in copy:
                h = base.copy()
                h.update(data)
                h.digest()
                n += 1
        conn.execute("ROLLBACK")
    return n


def run_baseline(bench: BenchDatabase, org: uuid.UUID, n: int, workers: int) -> Pass:
    conninfo = bench.conninfo("system")
    keys = _cut_keys(conninfo, org, n, workers)
    bounds = [None, *keys, None]
    with psycopg.connect(conninfo) as conn:
        jobs = [
            (conninfo, str(org), _baseline_statement(org, bounds[k], bounds[k + 1]).as_bytes(conn))
            for k in range(workers)
        ]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        start = time.perf_counter()
        counts = pool.map(_stream_and_hash, jobs)
        seconds = time.perf_counter() - start
    return Pass("stream + SHA-256 (baseline)", workers, sum(counts), seconds)


# --------------------------------------------------------------------------- the run
async def _seal(bench: BenchDatabase, keyring: SigningKeyring) -> float:
    scopes = Scopes(bench.database)
    try:
        start = time.perf_counter()
        await Sealer(scopes, keyring).seal_once()
        return time.perf_counter() - start
    finally:
        await bench.database.dispose()


async def _verify(
    bench: BenchDatabase, org: uuid.UUID, keyring: SigningKeyring, workers: int
) -> VerifyReport:
    scopes = Scopes(bench.database)
    try:
        async with scopes.system_scope(ACTOR, org) as session:
            return await verify_org(session, org, keyring.verifying_keyring(), workers=workers)
    finally:
        await bench.database.dispose()


def run_verify_bench(
    *,
    events: int = 1_000_000,
    workers: int = 2,
    rounds: int = 2,
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> VerifyBenchReport:
    keyring = SigningKeyring.from_seed(generate_key()[1], "bench")
    with bench_database(database_url, orgs=1, users_per_org=1) as bench:
        org = bench.orgs()[0]
        echo(f"loading {events:,} varied events into one organization")
        load_seconds = load_varied(bench, org, events)
        echo("sealing them (the real sealer, system role)")
        seal_seconds = run_async(_seal(bench, keyring))
        results = []
        for r in range(rounds):
            current = Round()
            for n_workers in sorted({1, workers}):
                echo(f"round {r + 1}: verify_org, then the baseline, on {n_workers} worker(s)")
                report = run_async(_verify(bench, org, keyring, n_workers))
                current.reports.append(report)
                current.verify.append(
                    Pass("verify_org (full)", report.workers, report.events_checked, report.seconds)
                )
                current.baseline.append(run_baseline(bench, org, events, n_workers))
            results.append(current)
    return VerifyBenchReport(events, load_seconds, seal_seconds, results)
