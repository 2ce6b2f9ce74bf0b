"""``carelog bench verify``: events verified per second, against two in-run baselines.

Loads ``events`` rows into one organization as the admin (``INSERT … SELECT
generate_series``, one transaction per 10,000 rows, like group commits), seals them with the
real sealer, then times ``verify_org`` as the system role: a full verification (every leaf
re-hashed from the stored row, every root, signature and link). The baselines, measured on
the same rows in the same run: SHA-256 alone over prebuilt canonical bytes, and the canonical
serialisation alone (no hashing, no database).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256

import psycopg

from carelog.audit.integrity.checkpoint import SigningKeyring, generate_key
from carelog.audit.integrity.rows import EVENT_SELECT, row_canonical_bytes, text_cursor
from carelog.audit.integrity.sealer import Sealer
from carelog.audit.integrity.verify import VerifyReport, verify_org
from carelog.bench import BenchDatabase, bench_database
from carelog.bench.query import _ACTIONS, _LOAD_SQL
from carelog.db.session import Scopes

TARGET_EVENTS_PER_SECOND = 300_000
LOAD_BATCH = 10_000
BASELINE_SAMPLE = 200_000


@dataclass
class VerifyBenchReport:
    events: int
    load_seconds: float
    seal_seconds: float
    verify: VerifyReport
    sha256_rate: float
    canonical_rate: float

    @property
    def rate(self) -> float:
        return self.verify.events_checked / self.verify.seconds if self.verify.seconds else 0.0


def _load(bench: BenchDatabase, org: uuid.UUID, n: int) -> float:
    start = time.perf_counter()
    newest = datetime.now(UTC)
    with psycopg.connect(bench.conninfo("admin"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # the load only, never the runtime
        done = 0
        while done < n:
            size = min(LOAD_BATCH, n - done)
            # generate_series(1, size) shifted so every batch gets its own, older timestamps
            conn.execute(
                _LOAD_SQL.replace("secs => i *", f"secs => ({done} + i) *"),
                {
                    "org": org,
                    "actor_prefix": "user_bench_",
                    "actions": [a for a, _ in _ACTIONS],
                    "types": [t for _, t in _ACTIONS],
                    "newest": newest,
                    "n": size,
                },
            )
            done += size
        conn.execute("ANALYZE audit_logs")
    return time.perf_counter() - start


def _baselines(bench: BenchDatabase, org: uuid.UUID, sample: int) -> tuple[float, float]:
    async def fetch() -> list[tuple[object, ...]]:
        async with (
            await psycopg.AsyncConnection.connect(bench.conninfo("admin")) as conn,
            text_cursor(conn) as cur,
        ):
            await cur.execute(
                f"SELECT {EVENT_SELECT} FROM audit_logs e WHERE e.org_id = %s LIMIT %s",
                (org, sample),
            )
            return await cur.fetchall()

    rows = asyncio.run(fetch())
    start = time.perf_counter()
    prebuilt = [row_canonical_bytes(r) for r in rows]
    canonical_rate = len(rows) / (time.perf_counter() - start)
    start = time.perf_counter()
    for data in prebuilt:
        sha256(b"\x00" + data).digest()
    sha_rate = len(rows) / (time.perf_counter() - start)
    return sha_rate, canonical_rate


async def _seal_and_verify(bench: BenchDatabase, org: uuid.UUID) -> tuple[float, VerifyReport]:
    scopes = Scopes(bench.database)
    keyring = SigningKeyring.from_seed(generate_key()[1], "bench")
    try:
        start = time.perf_counter()
        await Sealer(scopes, keyring).seal_once()
        seal_seconds = time.perf_counter() - start
        async with scopes.system_scope("system:bench-verify", org) as session:
            report = await verify_org(session, org, keyring.verifying_keyring())
    finally:
        await bench.database.dispose()
    return seal_seconds, report


def run_verify_bench(
    *,
    events: int = 1_000_000,
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> VerifyBenchReport:
    with bench_database(database_url, orgs=1, users_per_org=1) as bench:
        org = bench.orgs()[0]
        echo(f"loading {events:,} events into one organization")
        load_seconds = _load(bench, org, events)
        echo("sealing them (the real sealer, system role)")
        seal_seconds, report = asyncio.run(_seal_and_verify(bench, org))
        echo("baselines: canonical serialisation, SHA-256 over prebuilt bytes")
        sha_rate, canonical_rate = _baselines(bench, org, min(events, BASELINE_SAMPLE))
    return VerifyBenchReport(events, load_seconds, seal_seconds, report, sha_rate, canonical_rate)
