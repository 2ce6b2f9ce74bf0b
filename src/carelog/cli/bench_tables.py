"""The tables ``carelog bench`` prints: one builder, one way to show a figure and a verdict.

Kept apart from the commands (``carelog.cli.bench_commands``) so each command reads as what it
measures and prints, and every table looks and aligns the same.
"""

from __future__ import annotations

import math

from rich.table import Table

from carelog.bench.audit import (
    TARGET_COPY_SHARE,
    TARGET_P99_MS,
    TARGET_REFERENCE_FACTOR,
    AuditBenchReport,
    Result,
)
from carelog.bench.query import TARGET_P95_MS, TARGET_RLS_FACTOR, QueryBenchReport


def new_table(title: str, *columns: str, left: tuple[str, ...] = ()) -> Table:
    """A result table: the first column (and any named in ``left``) reads as text, the rest
    as right-aligned figures."""
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 or column in left else "right")
    return table


def verdict(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def us(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.0f}"


def audit_table(report: AuditBenchReport) -> Table:
    copy = report.copy.rate
    table = new_table(
        "carelog bench audit: committed events/s (ratios to this run's baselines)",
        "run",
        "events",
        "events/s",
        "x (a) same conc.",
        "% of (b)",
        "py µs/ev",
        "pg µs/ev",
        "p50 ms",
        "p99 ms",
        "note",
        left=("note",),
    )
    rows: list[Result] = [*report.references, report.copy, *report.carelog]
    for r in rows:
        ref = report.reference_for(r.producers).rate if r.producers else float("nan")
        python_us, server_us = r.cpu_us()
        table.add_row(
            r.name,
            f"{r.events:,}",
            f"{r.rate:,.0f}",
            "-" if r in report.references or r is report.copy else f"{r.rate / ref:,.1f}",
            f"{100 * r.rate / copy:.0f}%",
            us(python_us),
            us(server_us),
            ms(r.p(0.50)),
            ms(r.p(0.99)),
            r.note,
        )
    return table


def audit_targets(report: AuditBenchReport) -> Table:
    copy = report.copy.rate
    by_name = {r.name: r for r in report.carelog}
    top = next(
        r for name, r in by_name.items() if name.endswith(" 256 producers") and "log_" in name
    )
    alone = next(r for name, r in by_name.items() if "writer alone" in name)
    table = new_table("targets", "target", "measured", "", left=("measured", ""))
    for label, r in (("log_audit_event x256", top), ("writer alone", alone)):
        share = r.rate / copy
        reference = report.reference_for(r.producers)
        factor = r.rate / reference.rate
        table.add_row(
            f"{label} ≥ {TARGET_COPY_SHARE:.0%} of raw COPY",
            f"{share:.0%}",
            verdict(share >= TARGET_COPY_SHARE),
        )
        table.add_row(
            f"{label} ≥ {TARGET_REFERENCE_FACTOR:.0f}x the reference at "
            f"{reference.producers} producers",
            f"{factor:,.1f}x",
            verdict(factor >= TARGET_REFERENCE_FACTOR),
        )
    p99 = top.p(0.99)
    table.add_row(
        f"p99 log_audit_event latency, 256 producers ≤ {TARGET_P99_MS:.0f} ms",
        f"{p99:.2f} ms",
        verdict(p99 <= TARGET_P99_MS),
    )
    spooled = sum(r.spooled for r in report.carelog)
    table.add_row(
        "no measured event spooled (spooled ones never count)",
        f"{spooled:,}",
        verdict(spooled == 0),
    )
    return table


def query_table(report: QueryBenchReport) -> Table:
    table = new_table(
        f"carelog bench query: get_audit_logs on {report.events:,} events "
        f"({report.iterations} iterations each; ms)",
        "query",
        "page",
        "rows",
        "unit p50",
        "unit p95",
        "raw unit p95",
        "x raw unit",
        "stmt p50",
        "raw p50",
        "superuser p50",
        "x superuser",
        "unit ≤ 5 ms",
        "RLS ≤ 1.3x",
        left=("page",),
    )
    for q in report.results:
        unit95, raw_unit95 = q.carelog_unit.p(0.95), q.raw_unit.p(0.95)
        raw50, su50 = q.raw.p(0.50), q.superuser.p(0.50)
        rls = raw50 / su50 if su50 > 0 else float("nan")
        table.add_row(
            q.name,
            q.page,
            f"{q.min_rows}..{q.rows}",
            ms(q.carelog_unit.p(0.50)),
            ms(unit95),
            ms(raw_unit95),
            f"{unit95 / raw_unit95:.2f}" if raw_unit95 > 0 else "-",
            ms(q.carelog.p(0.50)),
            ms(raw50),
            ms(su50),
            f"{rls:.2f}",
            verdict(unit95 <= TARGET_P95_MS and q.min_rows > 0),
            verdict(rls <= TARGET_RLS_FACTOR),
        )
    return table
