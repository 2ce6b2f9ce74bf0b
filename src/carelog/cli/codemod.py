"""``carelog codemod``: migrate application code off deprecated pre-carelog APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from carelog.legacy.codemod import DEFAULT_OLD_MODULES, Summary, rewrite_paths

app = typer.Typer(
    help="Rewrite application code that still calls deprecated audit APIs.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Rewrite application code that still calls deprecated audit APIs."""
    # A callback keeps ``audit-api`` a named subcommand even while it is the only one.


def _print_summary(summary: Summary) -> None:
    console = Console(highlight=False)
    changed = "Files that would change" if summary.check else "Files changed"
    rewritten = "Calls to rewrite" if summary.check else "Calls rewritten"
    table = Table(title="audit-api codemod", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in (
        ("Files scanned", summary.files_scanned),
        (changed, summary.files_changed),
        (rewritten, summary.calls_rewritten),
        ("Calls left for manual review", summary.calls_skipped),
        ("Files that could not be parsed", summary.files_failed),
    ):
        table.add_row(label, str(value))
    console.print(table)


@app.command("audit-api")
def audit_api(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories to rewrite.", show_default=False)
    ],
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; exit 1 while any file would change or any call is flagged "
            "or unparsable (what is left is printed).",
        ),
    ] = False,
    old_module: Annotated[
        list[str] | None,
        typer.Option(
            "--old-module",
            help="Deprecated module exporting log_audit_event; repeatable, replaces the "
            f"defaults ({', '.join(DEFAULT_OLD_MODULES)}).",
        ),
    ] = None,
    discover: Annotated[
        bool,
        typer.Option(
            "--discover/--no-discover",
            help="Also treat modules under PATHS that define the deprecated eight-parameter "
            "log_audit_event as deprecated modules.",
        ),
    ] = True,
) -> None:
    """Move log_audit_event calls to carelog.audit (async or _sync, by call site)."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: no such file or directory: {missing[0]}", err=True)
        raise typer.Exit(2)
    summary = rewrite_paths(
        paths, check=check, old_modules=old_module or DEFAULT_OLD_MODULES, discover=discover
    )
    for module in summary.discovered:
        typer.echo(f"discovered deprecated module: {module}")
    # Plain echo keeps report lines unwrapped and clickable (path:line) in terminals and CI.
    for line in summary.reports:
        typer.echo(line)
    _print_summary(summary)
    if check and not summary.done():
        left = [f"{summary.files_changed} file(s) would change"] if summary.files_changed else []
        if summary.calls_skipped:
            left.append(f"{summary.calls_skipped} call(s) flagged for manual migration")
        if summary.files_failed:
            left.append(f"{summary.files_failed} file(s) could not be parsed")
        typer.echo("not done: " + "; ".join(left) + " (listed above)")
        raise typer.Exit(1)
