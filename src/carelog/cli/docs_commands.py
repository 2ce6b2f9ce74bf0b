"""Generated documentation, so the pages cannot drift from the code they describe.

``carelog db docs [--check]`` regenerates docs/schema.md from the models and SQL files;
``carelog docs config [--check]`` regenerates the README's configuration table from
:class:`carelog.core.settings.Settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carelog.core.settings_doc import with_configuration_table
from carelog.db.docs import DOC_PATH, render_schema_doc

README_PATH = Path("README.md")


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


def config(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the table is out of date.")
    ] = False,
    readme: Annotated[
        Path, typer.Option("--readme", help="The README holding the table (run from the repo).")
    ] = README_PATH,
) -> None:
    """Regenerate the README's configuration table from the settings definition."""
    current = readme.read_text(encoding="utf-8")
    text = with_configuration_table(current)
    if check:
        if current != text:
            typer.echo(f"{readme} is out of date: run `carelog docs config`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{readme} is up to date")
        return
    if current == text:
        typer.echo(f"{readme} unchanged")
        return
    readme.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {readme}")


app = typer.Typer(help="Generated documentation.", no_args_is_help=True)
app.command("docs")(docs)

#: ``carelog docs schema|config``: every generated page in one place.
docs_app = typer.Typer(help="Regenerate generated documentation.", no_args_is_help=True)
docs_app.command("schema")(docs)
docs_app.command("config")(config)
