"""`carelog bench audit|query|verify|seal`: throughput and latency of the audit core, as ratios.

Each command measures its baselines in the same run, on the same server, and prints every
figure against them with the targets marked PASS or FAIL. By default it starts a
throwaway embedded PostgreSQL in a temporary directory; ``--database-url`` (an admin URL) uses a
temporary database and roles on an existing server instead, and drops them afterwards.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from carelog.bench.audit import run_audit_bench
from carelog.bench.query import TARGET_P95_MS, TARGET_RLS_FACTOR, run_query_bench
from carelog.cli import bench_tables as tables

app = typer.Typer(
    help="Benchmarks: ratios against baselines measured in the same run.", no_args_is_help=True
)
out = Console(width=None if sys.stdout.isatty() else 200)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Admin URL of an existing PostgreSQL (default: a throwaway embedded server).",
    ),
]


def _progress(line: str) -> None:
    """Every benchmark reports its phases the same way, dimmed, while it runs."""
    out.print(f"[dim]… {line}[/]", highlight=False)


@app.command("audit")
def audit(
    events: Annotated[
        int, typer.Option("--events", min=1000, help="Events per writer run and for COPY.")
    ] = 100_000,
    reference_events: Annotated[
        int, typer.Option("--reference-events", min=100, help="Sample for the reference (a).")
    ] = 5_000,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Writer throughput vs one-transaction-per-event and raw COPY; call latency."""
    report = run_audit_bench(
        events=events,
        reference_events=reference_events,
        database_url=database_url,
        echo=_progress,
    )
    out.print(tables.audit_table(report))
    out.print(tables.audit_targets(report))
    stats = report.writer_stats
    out.print(
        f"writer: {stats['committed']:,} committed in {stats['batches']:,} batches "
        f"(mean {stats['committed'] / max(1, stats['batches']):.0f}/batch), "
        f"{stats['spooled']:,} spooled, {stats['db_failures']} database failures",
        highlight=False,
    )


@app.command("query")
def query(
    events: Annotated[
        int, typer.Option("--events", min=1000, help="Events loaded into the measured org.")
    ] = 1_000_000,
    iterations: Annotated[int, typer.Option("--iterations", min=10)] = 200,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Pages at varied depths and dates: carelog vs the same SQL raw (app role, superuser)."""
    report = run_query_bench(
        events=events,
        iterations=iterations,
        database_url=database_url,
        echo=_progress,
    )
    out.print(tables.query_table(report))
    out.print(
        f"load: {report.events:,} events (+{report.noise:,} in another org) in "
        f"{report.load_seconds:.1f} s. 'unit' is the whole unit of work (org_scope: BEGIN, "
        "set_config, query, rows, COMMIT), judged against p95 ≤ "
        f"{TARGET_P95_MS:.0f} ms with rows on every page; 'raw' is the same compiled statement "
        "on psycopg as the app role with the same RLS context; 'superuser' the same statement "
        f"without RLS (target: app role ≤ {TARGET_RLS_FACTOR}x).",
        highlight=False,
    )


@app.command("http")
def http(
    seconds: Annotated[float, typer.Option("--seconds", min=1, help="Load per endpoint.")] = 10,
    connections: Annotated[int, typer.Option("--connections", min=1, max=256)] = 32,
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="Slices per endpoint, interleaved with /tx.")
    ] = 3,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="carelog up --workers N.")
    ] = 1,
    load: Annotated[
        str, typer.Option("--load", help="auto (wrk when installed), wrk or python.")
    ] = "auto",
    database_url: DatabaseUrlOption = None,
) -> None:
    """The request path vs a minimal FastAPI + one-transaction app, in the same run."""
    from carelog.bench.http import as_rows, run_http_bench

    report = run_http_bench(
        seconds=seconds,
        connections=connections,
        rounds=rounds,
        workers=workers,
        load=load,
        database_url=database_url,
        echo=_progress,
    )
    table = tables.new_table(
        f"carelog bench http: {workers} worker(s), {connections} connections, "
        f"{seconds:.0f} s each, "
        f"load by {report.generator} (each ratio against the /tx slices interleaved with it)",
        "endpoint",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "paired /tx",
        "x /tx",
        "target",
    )
    for row in as_rows(report):
        target = row["target"]
        verdict = (
            "" if target is None else f"≥ {target:.1f} " + tables.verdict(row["ratio"] >= target)
        )
        table.add_row(
            row["name"],
            f"{row['rate']:,.0f}",
            tables.ms(row["p50"]),
            tables.ms(row["p99"]),
            str(row["errors"]),
            "-" if row["paired"] is None else f"{row['paired']:,.0f}",
            f"{row['ratio']:.2f}",
            verdict,
        )
    out.print(table)


@app.command("verify")
def verify(
    events: Annotated[
        int, typer.Option("--events", min=1000, help="Events loaded, sealed and verified.")
    ] = 1_000_000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes for the parallel runs.")
    ] = 2,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Repeat the runs.")] = 2,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Full verification of varied events against streaming + hashing the same rows."""
    from carelog.bench.verify import TARGET_RATIO, run_verify_bench

    report = run_verify_bench(
        events=events,
        workers=workers,
        rounds=rounds,
        database_url=database_url,
        echo=_progress,
    )
    table = tables.new_table(
        f"carelog bench verify: {report.events:,} varied events, one organization",
        *("round", "workers", "verify_org ev/s", "stream+SHA-256 ev/s", "ratio", ""),
    )
    for r, current in enumerate(report.rounds, start=1):
        for i, (v, b) in enumerate(zip(current.verify, current.baseline, strict=True)):
            ratio = current.ratio(i)
            table.add_row(
                str(r),
                str(v.workers) if v.workers == b.workers else f"{v.workers} (asked {b.workers})",
                f"{v.rate:,.0f}",
                f"{b.rate:,.0f}",
                f"{ratio:.2f}",
                tables.verdict(ratio >= TARGET_RATIO and current.reports[i].ok),
            )
    out.print(table)
    last = report.rounds[-1].reports[-1]
    out.print(
        f"{'OK' if last.ok else 'FAIL'}: {last.events_checked:,} events re-hashed, "
        f"{last.roots} roots, {last.signatures} signatures; load {report.load_seconds:.1f} s, "
        f"sealing {report.seal_seconds:.1f} s ({report.seal_rate:,.0f} events/s); "
        f"target: verify ≥ {TARGET_RATIO:.1f} x streaming + hashing the same rows",
        highlight=False,
    )


@app.command("export")
def export(
    events: Annotated[
        int, typer.Option("--events", min=1000, help="Events loaded and exported.")
    ] = 200_000,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Repeat the runs.")] = 3,
    database_url: DatabaseUrlOption = None,
) -> None:
    """The audit export (JSONL, CSV) against a raw COPY of row_to_json of the same rows."""
    from carelog.bench.export import TARGET_RATIO, run_export_bench

    report = run_export_bench(
        events=events,
        rounds=rounds,
        database_url=database_url,
        echo=_progress,
    )
    table = tables.new_table(
        f"carelog bench export: {report.events:,} varied events, median of "
        f"{report.rounds} rounds (ratios to the raw COPY)",
        *("run", "events/s", "MiB", "x COPY", "peak RSS MiB", ""),
    )
    b = report.baseline
    table.add_row(b.label, f"{b.rate:,.0f}", f"{b.bytes / 2**20:,.0f}", "1.00", "-", "")
    for run in report.runs:
        ratio = report.ratio(run)
        if not run.seconds:  # the memory probe: a tenth of the rows, no rate
            table.add_row(
                run.label, "-", f"{run.bytes / 2**20:,.0f}", "-", f"{max(run.peak_mib):,.1f}", ""
            )
            continue
        table.add_row(
            run.label,
            f"{run.rate:,.0f}",
            f"{run.bytes / 2**20:,.0f}",
            f"{ratio:.2f}",
            f"{max(run.peak_mib):,.1f}",
            tables.verdict(ratio >= TARGET_RATIO),
        )
    out.print(table)
    out.print(
        f"load {report.load_seconds:.1f} s; target: each export ≥ {TARGET_RATIO:.1f} x "
        "the raw COPY, peak memory independent of the row count",
        highlight=False,
    )


@app.command("seal")
def seal(
    events: Annotated[
        int, typer.Option("--events", min=1000, help="Events written by the writer per run.")
    ] = 50_000,
    backlog: Annotated[
        int, typer.Option("--backlog", min=0, help="Unsealed events the sealer works through.")
    ] = 100_000,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Sealer rate against the writer's sustained rate; the writer's deadline while sealing."""
    from carelog.bench.seal import TARGET_SEAL_FACTOR, run_seal_bench

    report = run_seal_bench(
        events=events,
        backlog=backlog,
        database_url=database_url,
        echo=_progress,
    )
    w, h = report.writer, report.loaded
    table = tables.new_table(
        "carelog bench seal: events/s in one run (ratios to the writer, (w))",
        *("run", "events", "events/s", "x (w)", "p99 ms", "deadline misses", ""),
    )
    table.add_row(
        "(w) writer: log_audit_event, 256 producers",
        f"{w.events:,}",
        f"{w.rate:,.0f}",
        "1.00",
        tables.ms(w.p(0.99)),
        str(report.writer_misses),
        "",
    )
    table.add_row(
        "(s) sealer: one pass over (w)'s events",
        f"{report.sealed:,}",
        f"{report.seal_rate:,.0f}",
        f"{report.factor:.2f}",
        "-",
        "-",
        tables.verdict(report.factor >= TARGET_SEAL_FACTOR),
    )
    table.add_row(
        "(h) writer while the sealer runs",
        f"{h.events:,}",
        f"{h.rate:,.0f}",
        f"{h.rate / w.rate:.2f}" if w.rate else "-",
        tables.ms(h.p(0.99)),
        str(report.loaded_misses),
        tables.verdict(report.loaded_misses == 0),
    )
    out.print(table)
    out.print(
        f"the sealer sealed {report.sealed_meanwhile:,} events during (h) "
        f"(backlog {report.backlog:,}); targets: (s) ≥ {TARGET_SEAL_FACTOR:.0f} x (w), "
        "no deadline miss in (h)",
        highlight=False,
    )


@app.command("unit")
def unit(
    units: Annotated[int, typer.Option("--units", min=100, help="Units per layer and round.")] = (
        5_000
    ),
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Repeat the runs.")] = 2,
    database_url: DatabaseUrlOption = None,
) -> None:
    """One unit of work (BEGIN, context, one RLS read, COMMIT) by the layer that runs it."""
    from carelog.bench.unit import run_unit_bench

    report = run_unit_bench(units=units, rounds=rounds, database_url=database_url, echo=_progress)
    table = tables.new_table(
        f"carelog bench unit: {report.units:,} units per run, one connection, app role",
        *("run", "CPU µs/unit", "wall µs/unit", "CPU x (a)"),
    )
    for run in report.runs:
        table.add_row(
            run.label, f"{run.cpu_us:,.0f}", f"{run.wall_us:,.0f}", f"{report.ratio(run):.2f}"
        )
    out.print(table)
    out.print(
        "CPU is this process's (time.process_time); each ratio is against (a) of its round. "
        "Every audited request pays (c) at least once before its own work.",
        highlight=False,
    )
