"""`carelog keys rotate`: re-encrypt medical records still under a retired key.

Organizations that have such records are listed through the admin connection (the system role
sees one organization at a time by design and cannot enumerate them); every read and rewrite of
records then goes through the system role, one organization per transaction, audited.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console

from carelog.db.engine import Database
from carelog.db.session import parse_org_id
from carelog.platform.records.rotation import RotationResult, rotate_org
from carelog.runtime import Runtime, opened

app = typer.Typer(help="Medical-record encryption keys.", no_args_is_help=True)
out = Console()


@app.callback()
def _group() -> None:
    """Medical-record encryption keys (keeps `keys` a group of commands)."""


def orgs_to_rotate(db: Database, active_key_id: str, org: str | None) -> list[uuid.UUID]:
    if org is not None:
        return [parse_org_id(org)]
    with db.sync_engine("admin").connect() as conn:
        rows = conn.execute(
            sa.text("select distinct org_id from records where key_id <> :k order by org_id"),
            {"k": active_key_id},
        )
        return [uuid.UUID(str(r)) for r in rows.scalars()]


async def rotate_all(runtime: Runtime, orgs: list[uuid.UUID]) -> list[RotationResult]:
    """Rotate each org in turn, inside the runtime (every rewrite is audited)."""
    async with runtime.started():
        return [await rotate_org(runtime.scopes, runtime.record_keyring, org) for org in orgs]


@app.command()
def rotate(
    org: Annotated[
        str | None, typer.Option("--org", help="Only this organization id (default: all).")
    ] = None,
) -> None:
    """Re-encrypt every record not under the active (first) key of CARELOG_RECORD_KEYS."""
    with opened() as runtime:
        keyring = runtime.record_keyring
        orgs = orgs_to_rotate(runtime.database, keyring.active_key_id, org)
        results = asyncio.run(rotate_all(runtime, orgs))
    total = sum(r.rotated for r in results)
    for r in results:
        if r.rotated:
            old = ", ".join(sorted(r.from_key_ids))
            out.print(f"organization {r.org_id}: {r.rotated} record(s) from {old}", highlight=False)
    out.print(
        f"{total} record(s) now under key {keyring.active_key_id} "
        f"({sum(1 for r in results if r.rotated)} organization(s))",
        highlight=False,
    )
