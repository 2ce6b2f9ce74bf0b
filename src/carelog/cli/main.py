"""The `carelog` command. Errors end as one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import cache
from typing import Annotated

import typer
from rich.console import Console
from typer._click import Command, Context  # the Click Typer vendors (TyperGroup's types)
from typer.core import TyperGroup

from carelog import __version__
from carelog.core.errors import CarelogError

# Each top-level command group is imported only when it is run (or when help lists it):
# importing every group up front pulled in FastAPI, uvicorn, SQLAlchemy, libcst and the whole
# audit core, seconds of start-up before `carelog --version` could answer.


def _module(module: str, name: str) -> Callable[[typer.Typer], None]:
    def add(root: typer.Typer) -> None:
        root.add_typer(importlib.import_module(f"carelog.cli.{module}").app, name=name)

    return add


def _db(root: typer.Typer) -> None:
    from carelog.cli import db_commands, docs_commands

    db_commands.app.command("docs")(docs_commands.docs)
    root.add_typer(db_commands.app, name="db")


def _audit(root: typer.Typer) -> None:
    from carelog.cli import (
        audit_commands,
        integrity_commands,
        retention_commands,
        spool_commands,
        stream_commands,
    )

    group = audit_commands.app
    group.add_typer(integrity_commands.app)
    group.add_typer(
        stream_commands.app,
        name="stream",
        help="Stream the audit log to NATS JetStream and webhooks.",
    )
    group.add_typer(
        spool_commands.app, name="spool", help="The local audit spool and its quarantine."
    )
    group.add_typer(
        retention_commands.app, name="retention", help="Retention policies, legal holds and purges."
    )
    root.add_typer(group, name="audit")


def _docs(root: typer.Typer) -> None:
    from carelog.cli import docs_commands

    root.add_typer(docs_commands.docs_app, name="docs")


def _up(root: typer.Typer) -> None:
    from carelog.cli import up_command

    root.command("up")(up_command.up)


#: Each command's name and how to add it to a root, in the order ``carelog --help`` lists them.
COMMANDS: dict[str, Callable[[typer.Typer], None]] = {
    "db": _db,
    "audit": _audit,
    "bench": _module("bench_commands", "bench"),
    "docs": _docs,
    "legacy": _module("legacy_commands", "legacy"),
    "dev": _module("dev_commands", "dev"),
    "keys": _module("keys_commands", "keys"),
    "subject": _module("subject_commands", "subject"),
    "demo": _module("demo", "demo"),
    "codemod": _module("codemod", "codemod"),
    "up": _up,
}


@cache
def _load(name: str) -> Command:
    """One command, built by Typer under a root like ours (no completion options)."""
    root = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    COMMANDS[name](root)
    return typer.main.get_group(root).commands[name]


class _LazyGroup(TyperGroup):
    """The root group: lists every command, imports one only when it is asked for."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in COMMANDS:
            return _load(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="carelog",
    cls=_LazyGroup,
    help="Compliance-grade audit log and data layer for multi-tenant care platforms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carelog {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """carelog: one canonical schema, one audit log."""


def _debugging() -> bool:
    from carelog.core.settings import Settings

    try:
        return Settings.from_env().debug
    except CarelogError:
        return False  # a broken configuration is reported, not a reason for a traceback


def main() -> None:
    """Run the CLI; usage errors are Typer's, everything else becomes one line on stderr."""
    try:
        app()
    except CarelogError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if _debugging():
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
            "(set CARELOG_DEBUG=1 for a traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
