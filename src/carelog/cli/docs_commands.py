"""``carelog db docs [--check]``: regenerate docs/schema.md from the models and SQL files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carelog.db.docs import DOC_PATH, render_schema_doc


def docs(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the page is out of date.")
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", help="Where the page lives (run from the repository).")
    ] = DOC_PATH,
) -> None:
    """Generate docs/schema.md (tables, columns, tenant scope, RLS policies)."""
    text = render_schema_doc()
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if check:
        if current != text:
            typer.echo(f"{output} is out of date: run `carelog db docs`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    if current == text:
        typer.echo(f"{output} unchanged")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}")


app = typer.Typer(help="Generated documentation.", no_args_is_help=True)
app.command("docs")(docs)
