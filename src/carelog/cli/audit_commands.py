"""`carelog audit …`: search, export and report on the audit log from a terminal.

Every command acts as a person (``--as``) inside one organization (``--org``) through the app
role, exactly like a web request: the CLI has no back door, so an operator who is not an owner
or admin of the org sees an empty log, and each export is recorded under their name.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from carelog.audit import audit_context
from carelog.audit.errors import AuditInputError
from carelog.audit.export import FORMATS, ExportReceipt, export_audit_logs
from carelog.audit.filters import AuditFilters
from carelog.audit.query import AuditRecord, conditions, get_audit_logs
from carelog.audit.report import access_report, compliance_report
from carelog.audit.trail_reads import (
    record_access_report,
    record_compliance_report,
    record_page_read,
)
from carelog.db.schema import AuditLog
from carelog.db.session import Scopes, parse_org_id
from carelog.db.unit import Unit
from carelog.runtime import running

app = typer.Typer(help="Search, export and report on the audit log.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")

Org = Annotated[str, typer.Option("--org", help="Organization id (UUID).")]
As = Annotated[str, typer.Option("--as", help="Acting user: an owner or admin of the org.")]
Since = Annotated[
    str | None, typer.Option("--since", help="From this time (ISO 8601; naive means UTC).")
]
Until = Annotated[str | None, typer.Option("--until", help="Before this time (exclusive).")]
Actions = Annotated[list[str] | None, typer.Option("--action", help="Action (repeatable).")]
ResourceTypes = Annotated[
    list[str] | None, typer.Option("--resource-type", help="Resource type (repeatable).")
]
ResourceId = Annotated[str | None, typer.Option("--resource-id", help="Resource id.")]
Actor = Annotated[str | None, typer.Option("--actor", help="Actor id.")]
Subject = Annotated[str | None, typer.Option("--subject", help="Data subject id.")]
Outcomes = Annotated[
    list[str] | None, typer.Option("--outcome", help="success|failure|denied (repeatable).")
]


def parse_when(value: str | None, field: str) -> datetime | None:
    """ISO 8601 from a person: a bare date or a time without offset is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AuditInputError(
            f"{value!r} is not a date or time",
            field=field,
            hint="e.g. 2024-05-01 or 2024-05-01T12:00Z",
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def build_filters(
    since: str | None = None,
    until: str | None = None,
    actions: list[str] | None = None,
    resource_types: list[str] | None = None,
    resource_id: str | None = None,
    actor_id: str | None = None,
    subject: str | None = None,
    outcomes: list[str] | None = None,
    limit: int = 50,
) -> AuditFilters:
    return AuditFilters(
        start=parse_when(since, "since"),
        end=parse_when(until, "until"),
        actions=tuple(actions or ()),
        resource_types=tuple(resource_types or ()),
        resource_id=resource_id,
        actor_id=actor_id,
        data_subject_id=subject,
        outcomes=tuple(outcomes or ()),  # type: ignore[arg-type]  # validated by AuditFilters
        limit=limit,
    )


def _run(work: Callable[[Scopes], Awaitable[T]]) -> T:
    """Run ``work`` inside the runtime (reads and exports are themselves audited)."""

    async def main() -> T:
        async with running() as runtime:
            return await work(runtime.scopes)

    return asyncio.run(main())


#: How the trail's own read events name this surface (see ``carelog.audit.trail_reads``).
VIA = "cli"


def _records_table(items: list[AuditRecord]) -> Table:
    table = Table("time (UTC)", "actor", "action", "resource", "outcome", "subject", "from")
    for r in items:
        table.add_row(
            r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.workos_user_id,
            r.action,
            f"{r.resource_type}:{r.resource_id or '-'}",
            r.outcome,
            r.data_subject_id or "",
            r.ip_address or "",
        )
    return table


@app.command()
def query(
    org: Org,
    as_user: As,
    since: Since = None,
    until: Until = None,
    action: Actions = None,
    resource_type: ResourceTypes = None,
    resource_id: ResourceId = None,
    actor_id: Actor = None,
    subject: Subject = None,
    outcome: Outcomes = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows per page (1..1000).")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of a page.")] = None,
) -> None:
    """One page of events, newest first; prints the cursor of the next page."""
    org_id = parse_org_id(org)
    filters = build_filters(
        since, until, action, resource_type, resource_id, actor_id, subject, outcome, limit
    )

    async def work(scopes: Scopes) -> None:
        async with scopes.org_scope(as_user, org_id) as session:
            page = await get_audit_logs(session, org_id, filters, cursor)
        with audit_context(actor_id=as_user, org_id=org_id):
            await record_page_read(filters, len(page.items), paged=bool(cursor), via=VIA)
        out.print(_records_table(page.items))
        out.print(f"{len(page.items)} event(s)")
        if page.next_cursor:
            out.print(f"next page: --cursor {page.next_cursor}", soft_wrap=True)

    _run(work)


def _open_output(output: str, stack: ExitStack) -> BinaryIO:
    if output == "-":
        return sys.stdout.buffer
    try:
        return stack.enter_context(Path(output).open("xb"))
    except FileExistsError:
        raise AuditInputError(
            f"{output} already exists", field="output", hint="choose a new file"
        ) from None
    except OSError as exc:
        raise AuditInputError(f"cannot write {output}: {exc.strerror}", field="output") from None


@app.command()
def export(
    org: Org,
    as_user: As,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or workos.")] = "jsonl",
    output: Annotated[str, typer.Option("--output", "-o", help="File, or - for stdout.")] = "-",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept on record).")] = None,
    since: Since = None,
    until: Until = None,
    action: Actions = None,
    resource_type: ResourceTypes = None,
    resource_id: ResourceId = None,
    actor_id: Actor = None,
    subject: Subject = None,
    outcome: Outcomes = None,
    with_proofs: Annotated[
        bool,
        typer.Option(
            "--with-proofs",
            help="A verifiable JSONL bundle: sealed events, inclusion proofs, signed checkpoint.",
        ),
    ] = False,
) -> None:
    """Stream every matching event to a file; the export is recorded under --as."""
    if fmt not in FORMATS:
        raise AuditInputError(f"unknown format {fmt!r}", field="format", hint=", ".join(FORMATS))
    org_id = parse_org_id(org)
    filters = build_filters(
        since, until, action, resource_type, resource_id, actor_id, subject, outcome
    )
    receipt = ExportReceipt()

    async def work(scopes: Scopes) -> None:
        with ExitStack() as stack:
            sink = _open_output(output, stack)
            await _export(scopes, org_id, as_user, filters, fmt, reason, sink, receipt, with_proofs)

    _run(work)
    where = "stdout" if output == "-" else output
    err.print(f"exported {receipt.row_count} event(s) to {where} (export {receipt.export_id})")


async def _export(
    scopes: Scopes,
    org_id: uuid.UUID,
    as_user: str,
    filters: AuditFilters,
    fmt: str,
    reason: str | None,
    sink: BinaryIO,
    receipt: ExportReceipt,
    with_proofs: bool = False,
) -> None:
    progress = Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    async with scopes.org_scope(as_user, org_id) as session:
        total = await _count(session, org_id, filters)
        with progress:
            task = progress.add_task("rows", total=total)
            async for chunk in export_audit_logs(
                session,
                org_id,
                as_user,
                filters,
                fmt,
                reason,
                on_rows=lambda n: progress.advance(task, n),
                receipt=receipt,
                **_proof_options(scopes, with_proofs),
            ):
                sink.write(chunk)
    sink.flush()


def _proof_options(scopes: Scopes, with_proofs: bool) -> dict[str, Any]:
    """``--with-proofs``: a bundle carrying the public keys that verify its checkpoint."""
    if not with_proofs:
        return {}
    from carelog.audit.integrity.keys import load_signing_keyring

    keys = load_signing_keyring(scopes.database.settings).public_keys()
    return {"with_proofs": True, "public_keys": keys}


async def _count(session: Unit, org_id: uuid.UUID, filters: AuditFilters) -> int:
    """The bar's total (an index count; the export itself never counts ahead)."""
    stmt = sa.select(sa.func.count()).select_from(AuditLog).where(*conditions(org_id, filters))
    return int((await session.execute(stmt)).scalar_one())


@app.command()
def report(
    org: Org,
    as_user: As,
    since: Annotated[str, typer.Option("--since", help="Period start (ISO 8601).")],
    until: Annotated[str, typer.Option("--until", help="Period end, exclusive.")],
    top: Annotated[int, typer.Option("--top", help="How many actors to list.")] = 10,
) -> None:
    """Compliance summary of a period: categories, outcomes, days, actors, PHI, denials."""
    from carelog.platform.audit_catalog import build_catalog

    org_id = parse_org_id(org)
    start, end = parse_when(since, "since"), parse_when(until, "until")
    build_filters(since, until)  # the same checks as everywhere (start before end)
    if start is None or end is None:  # pragma: no cover - both options are required
        raise AuditInputError("a report needs --since and --until", field="since")

    async def work(scopes: Scopes) -> None:
        async with scopes.org_scope(as_user, org_id) as session:
            rep = await compliance_report(session, org_id, start, end, build_catalog(), top_n=top)
        with audit_context(actor_id=as_user, org_id=org_id):
            await record_compliance_report(start, end, via=VIA)
        summary = Table("measure", "count", title=f"{rep.start} .. {rep.end}")
        for label, value in (
            ("events", rep.total),
            ("distinct actors", rep.distinct_actors),
            ("PHI accesses", rep.phi_accesses),
            ("PHI subjects touched", rep.phi_subjects),
            ("denied attempts", rep.denied),
            ("failures", rep.failures),
        ):
            summary.add_row(label, str(value))
        out.print(summary)
        for title, rows in (
            ("by category", sorted(rep.by_category.items())),
            ("by outcome", sorted(rep.by_outcome.items())),
            ("by day", [(str(d), n) for d, n in sorted(rep.by_day.items())]),
            ("top actors", rep.top_actors),
        ):
            table = Table(title, "count")
            for key, n in rows:
                table.add_row(str(key), str(n))
            out.print(table)

    _run(work)


@app.command("access-report")
def access_report_command(
    org: Org,
    as_user: As,
    subject: Annotated[str, typer.Option("--subject", help="Data subject (patient) id.")],
    since: Since = None,
    until: Until = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many.")] = None,
) -> None:
    """Every access to one data subject's records: who, when, what, from where, result."""
    org_id = parse_org_id(org)
    filters = build_filters(since, until, subject=subject)

    async def work(scopes: Scopes) -> None:
        async with scopes.org_scope(as_user, org_id) as session:
            entries = await access_report(
                session, org_id, subject, filters.start, filters.end, limit=limit
            )
        with audit_context(actor_id=as_user, org_id=org_id):
            await record_access_report(subject, len(entries), via=VIA)
        table = Table("time (UTC)", "actor", "action", "resource", "outcome", "ip", "user agent")
        for e in entries:
            table.add_row(
                e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                e.actor_id,
                e.action,
                f"{e.resource_type}:{e.resource_id or '-'}",
                e.outcome,
                e.ip_address or "",
                e.user_agent or "",
            )
        out.print(table)
        out.print(f"{len(entries)} access(es) to {subject}")

    _run(work)
