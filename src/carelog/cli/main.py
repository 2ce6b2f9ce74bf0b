"""The `carelog` command. Errors end as one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from carelog import __version__
from carelog.cli import (
    audit_commands,
    bench_commands,
    codemod,
    db_commands,
    demo,
    dev_commands,
    docs_commands,
    integrity_commands,
    keys_commands,
    legacy_commands,
    retention_commands,
    spool_commands,
    stream_commands,
    subject_commands,
    up_command,
)
from carelog.core.errors import CarelogError
from carelog.core.settings import Settings

app = typer.Typer(
    name="carelog",
    help="Compliance-grade audit log and data layer for multi-tenant care platforms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_commands.app, name="db")
audit_commands.app.add_typer(integrity_commands.app)
audit_commands.app.add_typer(
    stream_commands.app, name="stream", help="Stream the audit log to NATS JetStream and webhooks."
)
audit_commands.app.add_typer(
    spool_commands.app, name="spool", help="The local audit spool and its quarantine."
)
audit_commands.app.add_typer(
    retention_commands.app, name="retention", help="Retention policies, legal holds and purges."
)
app.add_typer(audit_commands.app, name="audit", help="Search, export and report on the audit log.")
app.add_typer(bench_commands.app, name="bench", help="Benchmarks (ratios against baselines).")
db_commands.app.command("docs")(docs_commands.docs)
app.add_typer(docs_commands.docs_app, name="docs", help="Regenerate generated documentation.")
app.add_typer(legacy_commands.app, name="legacy", help="Migrate data from the Clerk-era design.")
app.add_typer(dev_commands.app, name="dev", help="Development helpers (refused in production).")
app.add_typer(keys_commands.app, name="keys", help="Medical-record encryption keys.")
app.add_typer(subject_commands.app, name="subject", help="Data subjects: erasure, accounting.")
app.add_typer(demo.app, name="demo", help="Demo organizations, experts and patients.")
app.add_typer(codemod.app, name="codemod", help="Rewrite old audit API call sites.")
app.command("up")(up_command.up)

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
