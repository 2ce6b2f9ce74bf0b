"""`carelog db …`: migrations as commands a person (and CI) can run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from carelog.cli.context import open_database
from carelog.db import migrate

app = typer.Typer(help="Schema migrations (Alembic, shipped in the package).", no_args_is_help=True)
out = Console()


@app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create roles if needed and migrate to REVISION (idempotent)."""
    with open_database() as db:
        migrate.upgrade(db, revision)
        out.print(f"database at revision [bold]{migrate.current(db)}[/]")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")]) -> None:
    """Migrate down to REVISION."""
    with open_database() as db:
        migrate.downgrade(db, revision)
        out.print(f"database at revision [bold]{migrate.current(db) or 'base'}[/]")


@app.command()
def current() -> None:
    """Print the database's current revision."""
    with open_database() as db:
        out.print(migrate.current(db) or "base (not migrated)")


@app.command()
def check() -> None:
    """Fail when the models and the migrated database disagree."""
    with open_database() as db:
        head = migrate.head_revisions()
        now = migrate.current(db)
        if now is None or now not in head:
            out.print(f"[red]database at {now or 'base'}, head is {', '.join(head)}[/]")
            raise typer.Exit(1)
        diffs = migrate.drift(db)
        if diffs:
            for diff in diffs:
                out.print(f"[red]drift:[/] {diff}")
            raise typer.Exit(1)
        out.print(f"no drift: models match migrations at {now}")
