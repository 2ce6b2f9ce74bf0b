"""`carelog audit stream status|run`: audit log streams to NATS JetStream and webhooks.

Destinations come from ``CARELOG_AUDIT_STREAMS`` (and ``CARELOG_AUDIT_STREAM_WEBHOOK_SECRET``
for webhooks). ``run`` streams in the foreground until Ctrl-C; ``status`` shows each
destination's deliveries, lag (events not yet delivered and the age of the oldest) and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

from carelog.audit.streams import (
    StreamRunner,
    StreamStatus,
    destinations_from_settings,
    stream_status,
)
from carelog.cli.context import open_database
from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings

app = typer.Typer(help="Stream the audit log to NATS JetStream and webhooks.", no_args_is_help=True)
out = Console()


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S%z}"


def status_table(rows: list[StreamStatus]) -> Table:
    table = Table(title="audit streams", title_justify="left")
    table.add_column("destination")
    table.add_column("kind")
    table.add_column("delivered", justify="right")
    table.add_column("lag (events)", justify="right")
    table.add_column("lag (s)", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("last error")
    for r in rows:
        error = "" if r.last_error is None else f"{_when(r.last_error_at)} {r.last_error}"
        table.add_row(
            r.destination,
            r.kind,
            str(r.delivered),
            str(r.lag_events),
            f"{r.lag_seconds:.1f}",
            str(r.error_count),
            error,
        )
    return table


@app.command()
def status() -> None:
    """Each destination: delivered events, lag in events and seconds, errors, the last error."""
    with open_database() as db:
        destinations = destinations_from_settings(db.settings)

        async def read() -> list[StreamStatus]:
            try:
                return await stream_status(db, destinations)
            finally:
                await db.dispose()

        rows = asyncio.run(read())
    if not rows:
        out.print("no audit streams (set CARELOG_AUDIT_STREAMS)")
        return
    out.print(status_table(rows))


@app.command()
def run() -> None:
    """Stream every committed audit event to the configured destinations until Ctrl-C."""
    destinations = destinations_from_settings(Settings.from_env())
    if not destinations:
        raise ConfigurationError(
            "no audit stream destinations",
            field="CARELOG_AUDIT_STREAMS",
            hint="e.g. CARELOG_AUDIT_STREAMS=nats://127.0.0.1:4222,https://siem.example/hook",
        )
    with open_database() as db:

        async def serve() -> None:
            runner = StreamRunner(db, destinations)
            try:
                await runner.run_forever()
            finally:
                await db.dispose()

        out.print(f"streaming the audit log to {', '.join(d.name for d in destinations)}")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
        out.print("stopped")
