"""`carelog audit retention show|apply`: what the retention policies keep, and purging the rest.

Organizations are listed through the admin connection (``CARELOG_DATABASE_URL``), the one
``carelog db upgrade`` uses: the system role sees one organization at a time by design and has
no way to enumerate them, and giving it one would widen every webhook's reach. Only these
maintenance commands use the admin connection for that; every read of the trail and every
deletion still goes through the system role, one organization per transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from carelog.audit.catalog import AuditCatalog
from carelog.audit.retention import (
    RETENTION_ACTOR,
    PurgePlan,
    RetentionResult,
    apply_retention,
    database_now,
    plan_purge,
)
from carelog.cli.context import open_database
from carelog.db.engine import Database
from carelog.db.session import Scopes, parse_org_id
from carelog.platform.audit_catalog import build_catalog
from carelog.runtime import running

app = typer.Typer(help="Retention policies, legal holds and purges.", no_args_is_help=True)
out = Console()

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Only this organization id (default: all).")
]


def default_catalog() -> AuditCatalog:
    """The platform's vocabulary: a category's actions are what its policy purges."""
    return build_catalog()


def list_orgs(db: Database, org: str | None) -> list[uuid.UUID]:
    if org is not None:
        return [parse_org_id(org)]
    with db.sync_engine("admin").connect() as conn:
        rows = conn.execute(sa.text("select id from organizations order by created_at, id"))
        return [uuid.UUID(str(r)) for r in rows.scalars()]


def _plans(db: Database, orgs: Sequence[uuid.UUID], catalog: AuditCatalog) -> list[PurgePlan]:
    async def run() -> list[PurgePlan]:
        scopes = Scopes(db)
        try:
            plans = []
            for org in orgs:
                async with scopes.maintenance_scope(RETENTION_ACTOR, org) as session:
                    now = await database_now(session)
                    plans.append(await plan_purge(session, org, catalog, now))
            return plans
        finally:
            await db.dispose()

    return asyncio.run(run())


def _plan_table(plan: PurgePlan, *, title: str, deleted: dict[str, int] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("category")
    table.add_column("retention days", justify="right")
    table.add_column("cut-off")
    table.add_column("deleted" if deleted is not None else "would purge", justify="right")
    table.add_column("held", justify="right")
    for cat in plan.categories:
        purged = deleted.get(cat.category, 0) if deleted is not None else cat.purgeable
        table.add_row(
            cat.category,
            str(cat.retention_days),
            f"{cat.cutoff:%Y-%m-%d}",
            str(purged),
            str(cat.held),
        )
    return table


def _print_holds(plan: PurgePlan) -> None:
    if not plan.holds:
        out.print("  legal holds: none", highlight=False)
        return
    for hold in plan.holds:
        out.print(f"  legal hold {hold.id}: {hold.describe()}", highlight=False)


@app.command()
def show(org: OrgOption = None) -> None:
    """Per organization and category: retention, cut-off, events a purge would delete, holds."""
    catalog = default_catalog()
    with open_database() as db:
        plans = _plans(db, list_orgs(db, org), catalog)
    if not plans:
        out.print("no organizations")
    for plan in plans:
        out.print(_plan_table(plan, title=f"organization {plan.org_id}"))
        out.print(
            f"  other actions: {plan.fallback_days} days (the '*' policy or the default)",
            highlight=False,
        )
        _print_holds(plan)


def _report(result: RetentionResult) -> None:
    verb = "would purge" if result.dry_run else "purged"
    for outcome in result.orgs:
        plan = outcome.plan
        out.print(
            _plan_table(
                plan,
                title=f"organization {plan.org_id}",
                deleted=None if result.dry_run else outcome.deleted,
            )
        )
        total = plan.purgeable if result.dry_run else outcome.total_deleted
        out.print(f"  {verb} {total} event(s)", highlight=False)
        _print_holds(plan)
    if result.partition_cutoff is None:
        out.print("partitions: not considered (the run did not cover every organization)")
    elif result.dry_run:
        names = ", ".join(result.partitions) or "none"
        out.print(
            f"partitions ending before {result.partition_cutoff:%Y-%m-%d} "
            f"(dropped unless a legal hold covers a row): {names}",
            highlight=False,
        )
    else:
        names = ", ".join(result.partitions) or "none"
        out.print(f"dropped partitions: {names}", highlight=False)


@app.command()
def apply(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")
    ] = False,
    org: OrgOption = None,
) -> None:
    """Delete expired events (and whole expired monthly partitions when all orgs are covered)."""
    with open_database() as db:
        orgs = list_orgs(db, org)

        async def run() -> RetentionResult:
            # A real run records each purge through the audit API, so it runs inside the
            # runtime (the writer lives on this event loop); a dry run records nothing.
            async with running(database=db) as runtime:
                return await apply_retention(
                    runtime.scopes,
                    runtime.catalog,
                    orgs=orgs,
                    dry_run=dry_run,
                    every_org=org is None,
                )

        result = asyncio.run(run())
    _report(result)
