"""`carelog subject …`: data-subject rights from the command line (erase, resume, rewrap,
accounting, export). Every command runs as a system actor pinned to one organization."""

from __future__ import annotations

import asyncio
import getpass
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console

from carelog.audit.api import AuditService, configure_audit
from carelog.audit.integrity.keys import load_signing_keyring
from carelog.audit.setup import create_audit_service
from carelog.cli.context import open_database
from carelog.db.engine import Database
from carelog.db.session import Scopes, parse_org_id
from carelog.platform.audit_catalog import build_catalog
from carelog.platform.subjects import erasure
from carelog.platform.subjects.identity import (
    SubjectDirectory,
    configure_subjects,
    create_subject_directory,
)

app = typer.Typer(help="Data subjects: erasure, accounting of disclosures, export.")
out = Console()
T = TypeVar("T")
OrgOption = Annotated[str, typer.Option("--org", help="Organization id.")]


@app.callback()
def _group() -> None:
    """Data subjects (patients): GDPR erasure and access, HIPAA accounting."""


@asynccontextmanager
async def running(db: Database) -> AsyncIterator[tuple[Scopes, SubjectDirectory, AuditService]]:
    service = create_audit_service(db, build_catalog())
    directory = create_subject_directory(db.settings)
    configure_audit(service)
    configure_subjects(directory)
    await service.start()
    try:
        yield Scopes(db), directory, service
    finally:
        await service.stop()
        configure_audit(None)
        configure_subjects(None)
        await db.dispose()


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
