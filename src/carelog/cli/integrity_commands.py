"""`carelog audit verify|proof|consistency|keys|seal|lag`: the tamper-evidence layer.

Verification and proofs run as the system role, one organization per transaction (they must
read every event of the org); ``verify --bundle`` needs no database at all.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import sqlalchemy as sa
import typer
from rich.console import Console

from carelog.audit.errors import AuditInputError
from carelog.audit.integrity.bundle import verify_bundle
from carelog.audit.integrity.checkpoint import SigningKeyring, VerifyingKeyring, generate_key
from carelog.audit.integrity.keys import load_signing_keyring
from carelog.audit.integrity.proofs import consistency_for, proof_for_event
from carelog.audit.integrity.sealer import Sealer
from carelog.audit.integrity.verify import DEFAULT_SEALING_WINDOW, VerifyReport, verify_org
from carelog.cli.audit_commands import parse_when
from carelog.cli.context import open_database
from carelog.db.session import Scopes, parse_org_id

app = typer.Typer(help="Verify the audit log, print proofs and keys, seal now.")
out = Console()
err = Console(stderr=True)
T = TypeVar("T")
VERIFY_ACTOR = "system:audit-verify"

PublicKeys = Annotated[
    list[str] | None,
    typer.Option(
        "--public-key",
        help="A trusted public key as kid:BASE64 (repeatable); adds to the configured ones.",
    ),
]


def _pinned(values: list[str] | None) -> dict[str, str]:
    keys: dict[str, str] = {}
    for value in values or []:
        key_id, sep, key = value.partition(":")
        if not sep or not key_id or not key:
            raise AuditInputError(f"{value!r} is not kid:BASE64", field="public_key")
        keys[key_id] = key
    return keys


def _run(work: Callable[[Scopes, SigningKeyring], Awaitable[T]]) -> T:
    async def main() -> T:
        with open_database() as db:
            try:
                return await work(Scopes(db), load_signing_keyring(db.settings))
            finally:
                await db.dispose()

    return asyncio.run(main())


def _all_orgs(scopes: Scopes) -> list[uuid.UUID]:
    with scopes.database.sync_engine("admin").connect() as conn:
        rows = conn.execute(sa.text("SELECT id FROM organizations ORDER BY id")).scalars()
        return [uuid.UUID(str(r)) for r in rows]


@app.command()
def verify(
    org: Annotated[
        str | None, typer.Option("--org", help="One organization (default: all).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Re-hash events from this time on (ISO 8601).")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Verify an exported bundle offline.")
    ] = None,
    public_key: PublicKeys = None,
    window: Annotated[
        float,
        typer.Option("--window", help="Sealing window in seconds: older unsealed events fail."),
    ] = DEFAULT_SEALING_WINDOW.total_seconds(),
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Processes re-hashing at once (default: one per core)."
        ),
    ] = None,
) -> None:
    """Recompute leaves, roots, signatures and links; name the first bad event or checkpoint."""
    pinned = _pinned(public_key)
    if bundle is not None:
        with bundle.open("rb") as handle:
            result = verify_bundle(handle, pinned or None)
        out.print(result.summary(), highlight=False, soft_wrap=True)
        if not pinned:
            err.print("note: keys taken from the bundle itself; pin them with --public-key")
        raise typer.Exit(0 if result.ok else 1)
    start = parse_when(since, "since")

    async def work(scopes: Scopes, keyring: SigningKeyring) -> list[VerifyReport]:
        keys = {**keyring.public_keys(), **pinned}
        verifying = VerifyingKeyring.from_public_keys(keys)
        orgs = [parse_org_id(org)] if org else _all_orgs(scopes)
        reports = []
        for org_id in orgs:
            async with scopes.system_scope(VERIFY_ACTOR, org_id) as session:
                report = await verify_org(
                    session,
                    org_id,
                    verifying,
                    since=start,
                    sealing_window=timedelta(seconds=window),
                    workers=workers,
                )
            if org or report.leaves or report.problems or report.pending:
                reports.append(report)
                if not as_json:
                    out.print(report.summary(), highlight=False, soft_wrap=True)
        return reports

    reports = _run(work)
    if as_json:
        out.print_json(orjson.dumps([r.to_json_dict() for r in reports]).decode())
    bad = [r for r in reports if not r.ok]
    total = sum(r.events_checked for r in reports)
    seconds = sum(r.seconds for r in reports)
    rate = total / seconds if seconds else 0.0
    err.print(
        f"{len(reports)} org(s), {total:,} events re-hashed in {seconds:.2f} s "
        f"({rate:,.0f}/s): {'FAIL' if bad else 'OK'}"
    )
    raise typer.Exit(1 if bad else 0)


@app.command()
def proof(
    event_id: Annotated[str, typer.Argument(help="The event's id.")],
    org: Annotated[str, typer.Option("--org", help="Its organization.")],
) -> None:
    """The event, its leaf index and inclusion proof, and the signed checkpoint (JSON)."""
    org_id = parse_org_id(org)
    try:
        event = uuid.UUID(event_id)
    except ValueError:
        raise AuditInputError(f"{event_id!r} is not an event id", field="event_id") from None

    async def work(scopes: Scopes, keyring: SigningKeyring) -> dict[str, object]:
        async with scopes.system_scope(VERIFY_ACTOR, org_id) as session:
            try:
                return await proof_for_event(session, org_id, event, keyring.public_keys())
            except LookupError as exc:
                raise AuditInputError(str(exc), field="event_id") from None

    typer.echo(orjson.dumps(_run(work), option=orjson.OPT_INDENT_2).decode())


@app.command()
def consistency(
    org: Annotated[str, typer.Option("--org", help="The organization.")],
    from_size: Annotated[int, typer.Option("--from", help="Older checkpoint's tree size.")],
    to_size: Annotated[int, typer.Option("--to", help="Newer checkpoint's tree size.")],
) -> None:
    """An RFC 9162 consistency proof between two signed checkpoints (JSON)."""
    org_id = parse_org_id(org)

    async def work(scopes: Scopes, keyring: SigningKeyring) -> dict[str, object]:
        async with scopes.system_scope(VERIFY_ACTOR, org_id) as session:
            try:
                return await consistency_for(session, org_id, from_size, to_size)
            except LookupError as exc:
                raise AuditInputError(str(exc), field="from") from None

    typer.echo(orjson.dumps(_run(work), option=orjson.OPT_INDENT_2).decode())


@app.command()
def keys(
    generate: Annotated[
        bool, typer.Option("--generate", help="Print a new key entry for the variable.")
    ] = False,
) -> None:
    """The public keys that verify checkpoints (key id -> base64 raw Ed25519 key)."""
    if generate:
        key_id, seed = generate_key()
        typer.echo(f"{key_id}:{seed}")
        err.print("secret: put it first in CARELOG_AUDIT_SIGNING_KEYS, keep the old keys after it")
        return
    from carelog.core.settings import Settings

    keyring = load_signing_keyring(Settings.from_env())
    typer.echo(
        orjson.dumps(
            {"active": keyring.active_key_id, "public_keys": keyring.public_keys()},
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


@app.command()
def seal(
    org: Annotated[
        list[str] | None, typer.Option("--org", help="Also checkpoint this org now (repeatable).")
    ] = None,
) -> None:
    """Seal every org's new events now and sign checkpoints (on demand for --org)."""
    wanted = [parse_org_id(o) for o in org or []]

    async def work(scopes: Scopes, keyring: SigningKeyring) -> None:
        result = await Sealer(scopes, keyring).seal_once(
            force_checkpoint=bool(wanted), org_ids=wanted
        )
        for o in result.orgs:
            signed = "checkpoint signed" if o.checkpoint else "no new checkpoint"
            out.print(f"{o.org_id}: +{o.sealed:,} sealed, tree size {o.tree_size:,}, {signed}")
        for org_id, why in result.failed.items():
            err.print(f"{org_id}: FAILED {why}")
        if result.failed:
            raise typer.Exit(1)

    _run(work)


@app.command()
def lag() -> None:
    """How far sealing is behind: unsealed events per org and their age."""

    async def work(scopes: Scopes, keyring: SigningKeyring) -> None:
        report = await Sealer(scopes, keyring).sealer_lag()
        for o in report.orgs:
            out.print(
                f"{o.org_id}: {o.unsealed:,} unsealed, oldest "
                f"{o.age_seconds(report.measured_at):.1f} s, tree size {o.tree_size:,}"
            )
        out.print(
            f"{report.unsealed:,} unsealed in total; horizon {report.horizon} "
            f"(lag {report.horizon_lag} transactions)"
        )

    _run(work)
