"""`carelog audit spool status|redrive`: what waits in the local spool and what is quarantined.

``status`` reads only the spool directory (no database needed, so it works during an outage):
files waiting for replay (and whether a live process still writes them), and every quarantined
line with its file, line number, kind and reason. ``redrive`` inserts the quarantined lines the
database refused once the cause is fixed; what is still refused (or unreadable) stays.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from carelog.audit.redrive import redrive as redrive_lines
from carelog.audit.spool import Spool
from carelog.cli.context import open_database
from carelog.core.settings import Settings

app = typer.Typer(help="The local audit spool and its quarantine.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Spool files waiting for replay and quarantined lines (exit 1 when any is quarantined)."""
    spool = Spool(Settings.from_env().spool_dir)
    files: list[dict[str, object]] = []
    total = 0
    for path in sorted(spool.directory.glob("spool-*.jsonl")):
        with path.open("rb") as handle:
            lines = sum(1 for _ in handle)
        total += lines
        files.append(
            {
                "file": path.name,
                "lines": lines,
                "bytes": path.stat().st_size,
                "held_by_live_process": not spool.orphaned(path),
            }
        )
    entries = list(spool.quarantine.entries())
    if as_json:
        doc = {
            "directory": str(spool.directory),
            "pending": files,
            "quarantined": [e.as_json() for e in entries],
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        out.print(f"spool: {spool.directory}")
        out.print(f"pending files: {len(files)} ({total} lines)")
        for f in files:
            held = "being written" if f["held_by_live_process"] else "waiting for replay"
            out.print(f"  {f['file']}: {f['lines']} lines, {f['bytes']} bytes, {held}")
        out.print(f"quarantined lines: {len(entries)}")
        if entries:
            table = Table("file", "line", "kind", "reason", "since")
            for e in entries:
                table.add_row(e.file, str(e.line), e.kind, e.reason, e.at)
            out.print(table)
            out.print(
                f"bytes kept in {spool.quarantine.path}; re-drive: carelog audit spool redrive"
            )
    if entries:
        raise typer.Exit(1)


@app.command()
def redrive() -> None:
    """Insert the quarantined lines again; keep (and report) what is still refused."""
    with open_database() as db:
        spool = Spool(db.settings.spool_dir)
        conninfo = db.writer_url.set(drivername="postgresql").render_as_string(hide_password=False)
        result = asyncio.run(redrive_lines(spool.quarantine, conninfo))
    out.print(f"re-driven: {result.stored} stored, {result.kept} still quarantined")
    if result.kept:
        raise typer.Exit(1)
