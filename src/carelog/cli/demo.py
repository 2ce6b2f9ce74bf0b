"""`carelog demo seed` and the `--demo` step of `carelog up`: two demo clinics, idempotently."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console

from carelog.cli.context import open_database
from carelog.db import migrate
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform import demo
from carelog.platform.records import RecordKeyring

app = typer.Typer(help="Demo data for trying carelog locally.", no_args_is_help=True)
out = Console()


@app.callback()
def _group() -> None:
    """Demo data for trying carelog locally (keeps `demo` a group of commands)."""


def run_seed(db: Database) -> demo.DemoSummary:
    """Seed through the system role on a short-lived event loop, then release its engines.

    The async engines belong to the loop that created them, so they are disposed before
    ``asyncio.run`` returns; the web server later builds its own on its own loop.
    """
    keyring = RecordKeyring.from_settings(db.settings)

    async def _run() -> demo.DemoSummary:
        try:
            return await demo.seed_demo(Scopes(db), keyring)
        finally:
            await db.dispose()

    return asyncio.run(_run())


def seed_demo(db: Database) -> str:
    """Seed the demo (used by `carelog up --demo`) and return a one-line summary."""
    return run_seed(db).describe()


@app.command("seed")
def seed(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the demo's ids as JSON instead of a summary.")
    ] = False,
) -> None:
    """Migrate if needed, then create the two demo clinics (does nothing when they exist)."""
    with open_database() as db:
        migrate.upgrade(db)
        summary = run_seed(db)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        out.print(f"demo data: {summary.describe()}", highlight=False)
