"""``carelog legacy import-audit``: bring the old separate audit database into ``audit_logs``.

The target is the configured database (``CARELOG_DATABASE_URL`` or the embedded one). Canonical
users and organizations are read through the admin connection (only this maintenance command
needs every tenant's people to map Clerk ids); events are written by the audit writer role and
the quarantine and run records by the system role. Bad input ends as one clear line.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from carelog.legacy.audit_import import (
    IdentityResolver,
    ImportReport,
    LegacyAuditImporter,
    LegacySource,
    Vocabulary,
    read_org_map,
    read_user_map,
    reconciliation_table,
    record_import_run,
)
from carelog.legacy.audit_import.source import parse_source_url
from carelog.platform.audit_catalog import LEGACY_RESOURCE_TYPES
from carelog.runtime import Runtime, opened

app = typer.Typer(help="Migrate data from the Clerk-era design.", no_args_is_help=True)
out = Console()


@app.callback()
def _group() -> None:
    """Migrate data from the Clerk-era design."""


async def _audit_run(runtime: Runtime, report: ImportReport) -> int:
    async with runtime.started():
        return await record_import_run(report, runtime.scopes)


@app.command("import-audit")
def import_audit(
    source: Annotated[
        str, typer.Option("--source", help="URL of the legacy audit database.", show_default=False)
    ],
    user_map: Annotated[
        Path | None,
        typer.Option("--user-map", help="CSV clerk_user_id,workos_user_id,org_id."),
    ] = None,
    org_map: Annotated[
        Path | None,
        typer.Option("--org-map", help="CSV workos_user_id,org_id (users without a personal org)."),
    ] = None,
    users_source: Annotated[
        str | None,
        typer.Option(
            "--users-source",
            help="URL of the Clerk-era main database (its users table); default: --source.",
        ),
    ] = None,
    source_name: Annotated[
        str | None,
        typer.Option(
            "--source-name",
            help="Stable name of the source (default host:port/dbname); keep it across reruns.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Map and count everything; write nothing.")
    ] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows per transaction.")] = 500,
) -> None:
    """Import the legacy audit table; rerun safely (each legacy row is imported once)."""
    users = read_user_map(user_map) if user_map else {}
    orgs = read_org_map(org_map) if org_map else {}
    legacy = LegacySource.open(source, name=source_name)
    people = (
        LegacySource(parse_source_url(users_source, option="--users-source"))
        if users_source
        else legacy
    )
    try:
        emails = people.legacy_user_emails()
        with opened() as runtime:
            catalog = runtime.catalog
            importer = LegacyAuditImporter(
                target=runtime.database,
                source=legacy,
                resolver=IdentityResolver(users, orgs, emails),
                vocabulary=Vocabulary(catalog, LEGACY_RESOURCE_TYPES),
                masker=runtime.audit.masker,
                batch_size=batch,
                dry_run=dry_run,
            )
            report = importer.run()
            audited = 0
            if not dry_run:
                audited = asyncio.run(_audit_run(runtime, report))
    finally:
        legacy.close()
        if people is not legacy:
            people.close()
    out.print(reconciliation_table(report))
    if audited:
        out.print(f"AUDIT_LOG_IMPORTED recorded in {audited} organization(s).")
    if not report.counts.adds_up() or not report.counts.table_agrees():
        raise typer.Exit(1)
