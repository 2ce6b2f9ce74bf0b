"""`carelog subject …`: data-subject rights from the command line (erase, resume, rewrap,
accounting, export). Every command runs as a system actor pinned to one organization."""

from __future__ import annotations

import asyncio
import getpass
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console

from carelog.audit import audit_context, log_audit_event
from carelog.audit.api import AuditService
from carelog.audit.integrity.keys import load_signing_keyring
from carelog.cli.context import open_database
from carelog.db.engine import Database
from carelog.db.session import Scopes, parse_org_id
from carelog.platform.records.crypto import RecordKeyring
from carelog.platform.subjects import erasure
from carelog.platform.subjects.accounting import (
    ACCOUNTING_ACTOR,
    Accounting,
    build_accounting,
    record_disclosure,
)
from carelog.platform.subjects.export import export_subject
from carelog.platform.subjects.identity import SubjectDirectory, backfill_meetings
from carelog.runtime import running as runtime_running

app = typer.Typer(help="Data subjects: erasure, accounting of disclosures, export.")
out = Console()
T = TypeVar("T")
OrgOption = Annotated[str, typer.Option("--org", help="Organization id.")]
CLI_ACTOR = "system:cli-subject"


@app.callback()
def _group() -> None:
    """Data subjects (patients): GDPR erasure and access, HIPAA accounting."""


@asynccontextmanager
async def running(db: Database) -> AsyncIterator[tuple[Scopes, SubjectDirectory, AuditService]]:
    """The composition root for one command (the caller keeps the database)."""
    async with runtime_running(database=db) as runtime:
        yield runtime.scopes, runtime.subject_directory, runtime.audit


def run(work: Callable[[Database], Coroutine[Any, Any, T]]) -> T:
    with open_database() as db:
        return asyncio.run(work(db))


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


@app.command()
def erase(
    org: OrgOption,
    reason: Annotated[str, typer.Option("--reason", help="The request (who asked, how).")],
    email: Annotated[
        str | None, typer.Option("--email", help="The e-mail they booked with.")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="The subject id.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    requested_by: Annotated[
        str | None, typer.Option("--by", help="Who carries it out (default: your login).")
    ] = None,
) -> None:
    """Erase a data subject: contact details and free text, their audit data key; a signed
    certificate goes into the trail. Refused under a legal hold; resumable after a crash."""
    if (email is None) == (subject is None):
        raise typer.BadParameter("give exactly one of --email and --subject")
    org_id = parse_org_id(org)
    who = requested_by or f"cli:{getpass.getuser()}"

    async def work(db: Database) -> erasure.Erasure:
        async with running(db) as (scopes, directory, _service):
            pending = await erasure.request_erasure(
                scopes,
                directory,
                org_id,
                subject=subject,
                email=email,
                reason=reason,
                requested_by=who,
            )
            if pending.status == "completed":
                return pending
            if not yes and not typer.confirm(
                f"Erase data subject {pending.subject_id} of {org_id}? This cannot be undone."
            ):
                raise typer.Exit(1)
            return await erasure.carry_out(scopes, load_signing_keyring(db.settings), pending)

    done = run(work)
    out.print(f"erasure {done.id}: subject {done.subject_id} {done.status}", highlight=False)
    if done.outcome:
        _print_json(done.outcome)


@app.command()
def resume(org: OrgOption) -> None:
    """Complete erasures left unfinished (a crash or a stopped process)."""
    org_id = parse_org_id(org)

    async def work(db: Database) -> list[erasure.Erasure]:
        async with running(db) as (scopes, _directory, _service):
            return await erasure.resume_pending(scopes, load_signing_keyring(db.settings), org_id)

    done = run(work)
    for e in done:
        out.print(f"erasure {e.id}: subject {e.subject_id} {e.status}", highlight=False)
    out.print(f"{len(done)} pending erasure(s) handled", highlight=False)


@app.command()
def backfill(org: OrgOption) -> None:
    """Name the data subject of meetings booked before migration 0009 (from their e-mail)."""
    org_id = parse_org_id(org)

    async def work(db: Database) -> int:
        async with (
            running(db) as (scopes, directory, _service),
            scopes.system_scope(CLI_ACTOR, org_id) as session,
        ):
            return await backfill_meetings(session, directory, org_id)

    out.print(f"{run(work)} meeting(s) now name their data subject", highlight=False)


@app.command("destroy-due")
def destroy_due(org: OrgOption) -> None:
    """Delete erased subjects' clinical records whose retention has ended (run daily)."""
    org_id = parse_org_id(org)

    async def work(db: Database) -> int:
        async with running(db) as (scopes, _directory, _service):
            return await erasure.destroy_due_records(scopes, org_id)

    out.print(f"{run(work)} clinical record(s) destroyed", highlight=False)


@app.command()
def rewrap(
    org: Annotated[str | None, typer.Option("--org", help="Only this organization.")] = None,
) -> None:
    """Re-wrap subject data keys under the active key-encryption key (KEK rotation)."""

    async def work(db: Database) -> int:
        orgs = [parse_org_id(org)] if org else _orgs_with_keys(db)
        async with running(db) as (_scopes, _directory, service):
            assert service.subject_keys is not None
            return sum([await service.subject_keys.rewrap(o) for o in orgs])

    moved = run(work)
    out.print(f"{moved} subject key(s) re-wrapped", highlight=False)


def _orgs_with_keys(db: Database) -> list[uuid.UUID]:
    # Listing organizations is an operator task: the admin connection, ids only.
    with db.sync_engine("admin").connect() as conn:
        rows = conn.execute(sa.text("select distinct org_id from audit_subject_keys"))
        return [uuid.UUID(str(r)) for r in rows.scalars()]


SubjectOption = Annotated[str, typer.Option("--subject", help="The data subject id.")]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
]


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", highlight=False)


@app.command()
def accounting(
    org: OrgOption,
    subject: SubjectOption,
    fmt: Annotated[str, typer.Option("--format", help="json or html (printable).")] = "json",
    output: OutputOption = None,
) -> None:
    """The accounting of disclosures and access history (six years), as JSON or HTML."""
    if fmt not in ("json", "html"):
        raise typer.BadParameter("use json or html", param_hint="--format")
    org_id = parse_org_id(org)

    async def work(db: Database) -> Accounting:
        async with running(db) as (scopes, _directory, service):
            with audit_context(actor_id=CLI_ACTOR, org_id=org_id):
                async with scopes.system_scope(ACCOUNTING_ACTOR, org_id) as session:
                    result = await build_accounting(session, service.catalog, org_id, subject)
                await log_audit_event(
                    "SUBJECT_ACCOUNTING_GENERATED",
                    "data_subject",
                    subject,
                    None,
                    {"entries": len(result.access), "via": "cli", "format": fmt},
                    data_subject=subject,
                )
            return result

    result = run(work)
    if fmt == "html":
        from carelog.web.viewer.accounting import accounting_html

        _emit(accounting_html(result), output)
    else:
        _emit(json.dumps(result.to_json(), indent=2), output)


@app.command("export")
def export_command(org: OrgOption, subject: SubjectOption, output: OutputOption = None) -> None:
    """Everything held about the subject as one JSON bundle (GDPR Art. 15/20); audited."""
    org_id = parse_org_id(org)

    async def work(db: Database) -> dict[str, Any]:
        keyring = RecordKeyring.from_settings(db.settings)
        async with running(db) as (scopes, _directory, service):
            with audit_context(actor_id=CLI_ACTOR, org_id=org_id):
                return await export_subject(
                    scopes, service, keyring, org_id, subject, f"cli:{getpass.getuser()}"
                )

    _emit(json.dumps(run(work), indent=2), output)


@app.command()
def disclose(
    org: OrgOption,
    subject: SubjectOption,
    recipient: Annotated[str, typer.Option("--recipient", help="Who received the data.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why it was disclosed.")],
    description: Annotated[str, typer.Option("--description", help="What was disclosed.")],
    when: Annotated[
        datetime | None, typer.Option("--at", help="When (default: now).", formats=["%Y-%m-%d"])
    ] = None,
) -> None:
    """Record a disclosure outside the platform in the append-only register."""
    org_id = parse_org_id(org)
    at = when.replace(tzinfo=UTC) if when else datetime.now(UTC)

    async def work(db: Database) -> uuid.UUID:
        async with running(db) as (scopes, _directory, _service):
            with audit_context(actor_id=CLI_ACTOR, org_id=org_id):
                async with scopes.system_scope(CLI_ACTOR, org_id) as session:
                    return await record_disclosure(
                        session,
                        org_id,
                        subject,
                        f"cli:{getpass.getuser()}",
                        recipient=recipient,
                        purpose=purpose,
                        description=description,
                        disclosed_at=at,
                    )

    out.print(f"disclosure {run(work)} recorded", highlight=False)
