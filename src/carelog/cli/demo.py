"""`carelog demo seed` and the `--demo` step of `carelog up`: two demo clinics, idempotently,
and a development Stripe webhook secret so the payment path can be tried locally."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from carelog.audit.api import audit_service, configure_audit
from carelog.audit.setup import create_audit_service
from carelog.cli.context import open_database
from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings
from carelog.db import migrate
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform import demo
from carelog.platform.audit_catalog import build_catalog
from carelog.platform.auth.tokens import auth_mode, dev_signer
from carelog.platform.records import RecordKeyring

#: Lifetime of the tokens `carelog up --demo` prints (a working day).
DEMO_TOKEN_TTL = 8 * 3600

app = typer.Typer(help="Demo data for trying carelog locally.", no_args_is_help=True)
out = Console()


@app.callback()
def _group() -> None:
    """Demo data for trying carelog locally (keeps `demo` a group of commands)."""


def run_seed(db: Database) -> demo.DemoSummary:
    """Seed through the system role on a short-lived event loop, then release its engines.

    The async engines belong to the loop that created them, so they are disposed before
    ``asyncio.run`` returns; the web server later builds its own on its own loop.
    """
    keyring = RecordKeyring.from_settings(db.settings)

    async def _run() -> demo.DemoSummary:
        # Seeding is a write path like any other: every row it creates is an audit event, so
        # an audit service runs for the seed (unless the process already has one).
        service = None
        try:
            audit_service()
        except ConfigurationError:
            service = create_audit_service(db, build_catalog())
            configure_audit(service)
            await service.start()
        try:
            return await demo.seed_demo(Scopes(db), keyring)
        finally:
            if service is not None:
                await service.stop()
                configure_audit(None)
            await db.dispose()

    return asyncio.run(_run())


def seed_demo(db: Database) -> str:
    """Seed the demo and return a one-line summary."""
    return run_seed(db).describe()


def demo_logins(summary: demo.DemoSummary) -> list[tuple[str, str, str, str]]:
    """Who to try the API as: (label, user, org, role) for each clinic's owner, the first
    expert of the first clinic (the host of its free event) and one patient (in their own
    personal organization, which is where a patient's token belongs)."""
    logins: list[tuple[str, str, str, str]] = []
    for org in summary.orgs:
        owner = org.user("owner")
        logins.append((f"owner of {org.slug}", owner.workos_user_id, str(org.id), "owner"))
    first = summary.orgs[0]
    expert = first.user("expert")
    logins.append((f"expert in {first.slug}", expert.workos_user_id, str(first.id), "member"))
    patient = first.user("patient")
    if patient.personal_org_id is not None:
        logins.append(("patient", patient.workos_user_id, str(patient.personal_org_id), "owner"))
    return logins


def access_lines(summary: demo.DemoSummary, settings: Settings) -> list[str]:
    """Ready-to-use bearer tokens (and the command that mints each) for the demo's people.

    Development tokens only: with WorkOS authentication (or in production) it says so instead.
    """
    try:
        mode = auth_mode(settings)
        signer = dev_signer(settings) if mode == "dev" else None
    except ConfigurationError as exc:
        return [f"no development tokens: {exc.message}"]
    if signer is None:
        return ["no development tokens: authentication is WorkOS (CARELOG_AUTH_MODE=workos)"]
    hours = DEMO_TOKEN_TTL // 3600
    lines = [f"development tokens (valid {hours} h; send as 'Authorization: Bearer <token>'):"]
    for label, user, org, role in demo_logins(summary):
        command = f"carelog dev token --user {user} --org {org} --role {role}"
        lines.append(f"  {label}: {user}")
        lines.append(f"    {signer.issue(user, org, role=role, ttl=DEMO_TOKEN_TTL)}")
        lines.append(f"    (new one: {command})")
    free = [e for o in summary.orgs for e in o.events if e.price == 0]
    if free:
        lines.append(
            f"free event to book with POST /api/meetings (no token): {free[0].id} "
            f"({free[0].name}, {free[0].expert}); all ids: carelog demo seed --json"
        )
    return lines


WEBHOOK_SECRET_FILE = "stripe-webhook-secret"  # noqa: S105 - a file name
WEBHOOK_PATH = "/api/webhooks/stripe"


def dev_webhook_secret(settings: Settings) -> tuple[str, bool]:
    """The Stripe webhook secret for a local run: the environment's, else one kept in the data
    dir (created once, mode 0600). Returns (secret, from_environment). Never in production."""
    if settings.stripe_webhook_secret is not None:
        configured = settings.stripe_webhook_secret.get_secret_value()
        if configured:
            return configured, True
    if settings.production:
        raise ConfigurationError("is required in production", field="STRIPE_WEBHOOK_SECRET")
    path = Path(settings.data_dir) / WEBHOOK_SECRET_FILE
    if path.exists() and path.read_text().strip().startswith("whsec_"):
        return path.read_text().strip(), False
    secret = "whsec_dev_" + secrets.token_hex(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret, False


def stripe_lines(secret: str, from_env: bool, url: str) -> list[str]:
    """How to send the local webhook a signed event: the Stripe CLI, or curl + openssl."""
    where = "STRIPE_WEBHOOK_SECRET" if from_env else f"development secret ({WEBHOOK_SECRET_FILE})"
    body = (
        '{"id":"evt_demo_ping","object":"event","type":"customer.created",'
        '"data":{"object":{"id":"cus_demo","object":"customer"}}}'
    )
    curl = (
        f"body='{body}'; ts=$(date +%s); "
        f"sig=$(printf '%s' \"$ts.$body\" | openssl dgst -sha256 -hmac '{secret}'"
        " | sed 's/^.* //'); "
        f'curl -s {url}{WEBHOOK_PATH} -H "Stripe-Signature: t=$ts,v1=$sig" '
        "-H 'Content-Type: application/json' -d \"$body\"; echo"
    )
    return [
        f"stripe webhook: {url}{WEBHOOK_PATH}, {where}:",
        f"  STRIPE_WEBHOOK_SECRET={secret}",
        f"  Stripe CLI (test mode): stripe listen --forward-to {url}{WEBHOOK_PATH}"
        " (restart with STRIPE_WEBHOOK_SECRET set to the whsec_ it prints)",
        f"  signed test event: {curl}",
    ]


@app.command("seed")
def seed(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the demo's ids as JSON instead of a summary.")
    ] = False,
) -> None:
    """Migrate if needed, then create the two demo clinics (does nothing when they exist)."""
    with open_database() as db:
        migrate.upgrade(db)
        summary = run_seed(db)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        out.print(f"demo data: {summary.describe()}", highlight=False)
