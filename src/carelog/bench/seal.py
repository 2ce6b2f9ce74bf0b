"""``carelog bench seal``: the sealer against the writer's sustained rate, in one run.

Three measurements on one PostgreSQL, in one process (as in the web app, where the sealer
runs beside the audit writer in the same event loop):

(w) the writer's sustained rate: ``log_audit_event`` from 256 producers over several
    organisations, with the realistic mix of ``carelog bench audit``; only committed events
    count (spooled ones are reported);
(s) the sealer's rate: one ``seal_once`` over exactly those events (every leaf hashed,
    every seal inserted, a checkpoint per organisation and per bounded transaction);
(h) headroom: the same writer load again while the sealer works through a backlog in the
    background (``Sealer.run``): the writer's rate and p99 against (w), and its deadline
    misses (batches that missed the writer's commit deadline and went to the spool).

Targets: (s) ≥ :data:`TARGET_SEAL_FACTOR` times (w), and no deadline miss in (h).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg

from carelog.audit.integrity.checkpoint import SigningKeyring, generate_key
from carelog.audit.integrity.sealer import Sealer
from carelog.bench import BenchDatabase, bench_database, run_async
from carelog.bench.audit import Result, run_log_audit_event, tune_embedded_server
from carelog.bench.verify import load_varied
from carelog.runtime import Runtime

TARGET_SEAL_FACTOR = 3.0
PRODUCERS = 256


@dataclass
class SealBenchReport:
    writer: Result  # (w)
    writer_misses: int
    sealed: int  # (s)
    seal_seconds: float
    loaded: Result  # (h): the writer while the sealer runs
    loaded_misses: int
    backlog: int
    sealed_meanwhile: int
    stats: dict[str, Any]

    @property
    def seal_rate(self) -> float:
        return self.sealed / self.seal_seconds if self.seal_seconds else 0.0

    @property
    def factor(self) -> float:
        return self.seal_rate / self.writer.rate if self.writer.rate else 0.0


def _seal_count(bench: BenchDatabase) -> int:
    with psycopg.connect(bench.conninfo("admin")) as conn:
        row = conn.execute("SELECT count(*) FROM audit_seals").fetchone()
        return int(row[0]) if row else 0


def _misses(stats: Any) -> int:
    """Batches that missed the deadline (or failed): their events went to the spool."""
    return int(stats.db_failures)


async def _runs(
    bench: BenchDatabase, events: int, backlog: int, echo: Callable[[str], None]
) -> SealBenchReport:
    runtime = Runtime(bench.database.settings, bench.database, spool_dir=bench.workdir / "spool")
    service = runtime.audit
    keyring = SigningKeyring.from_seed(generate_key()[1], "bench")
    sealer = Sealer(runtime.scopes, keyring)  # its own engine pool; the writer has its lanes
    stats = service.writer.stats
    async with runtime.started():
        await run_log_audit_event(service, bench.members, 64, 2000)  # warm-up
        await sealer.seal_once()  # and the warm-up's events are sealed
        echo(f"(w) writer: {events:,} events, {PRODUCERS} producers")
        before = (_misses(stats), stats.spooled)
        writer = await run_log_audit_event(service, bench.members, PRODUCERS, events)
        writer_misses = _misses(stats) - before[0]
        writer.events -= stats.spooled - before[1]  # spooled events are not throughput
        echo(f"(s) sealer: one pass over those {events:,} events")
        start = time.perf_counter()
        sealed = (await sealer.seal_once()).sealed
        seal_seconds = time.perf_counter() - start

        echo(f"(h) writer again, {events:,} events, sealer working through {backlog:,} more")
        load_varied(bench, bench.orgs()[0], backlog)  # unsealed: the sealer's backlog
        sealed_before = _seal_count(bench)
        task = asyncio.create_task(sealer.run(0.05))
        await asyncio.sleep(0.2)  # the sealer is under way
        before = (_misses(stats), stats.spooled)
        loaded = await run_log_audit_event(service, bench.members, PRODUCERS, events)
        loaded_misses = _misses(stats) - before[0]
        loaded.events -= stats.spooled - before[1]
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        sealed_meanwhile = _seal_count(bench) - sealed_before
    return SealBenchReport(
        writer,
        writer_misses,
        sealed,
        seal_seconds,
        loaded,
        loaded_misses,
        backlog,
        sealed_meanwhile,
        stats.as_dict(),
    )


def run_seal_bench(
    *,
    events: int = 50_000,
    backlog: int = 100_000,
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> SealBenchReport:
    with bench_database(database_url) as bench:
        if database_url is None:
            echo(f"embedded server: {tune_embedded_server(bench)}")
        return run_async(_runs(bench, events, backlog, echo))
