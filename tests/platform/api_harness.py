"""The real web app on a fresh database with the two-tenant world, driven over ASGI.

Tokens come from a development signer with a per-test random key (no files, no network); the
record keyring is generated per test; both are parts of the test's own ``Runtime``, the one
object the app reads its services from. Audit rows are read back as the superuser.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from carelog.audit.api import AuditService
from carelog.db.engine import Database
from carelog.platform.auth.tokens import DevTokenSigner, TokenVerifier
from carelog.platform.records import RecordKeyring
from carelog.runtime import Runtime
from carelog.web.app import create_app
from world import World, build_world


@dataclass
class Api:
    app: FastAPI
    runtime: Runtime
    client: httpx.AsyncClient
    world: World
    db: Database
    signer: DevTokenSigner
    keyring: RecordKeyring

    def token(self, user: str, org: object, role: str = "member", **kw: Any) -> str:
        return self.signer.issue(user, str(org), role=role, **kw)

    def auth(self, user: str, org: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, org)}"}

    def rows(self, sql: str, **params: object) -> list[dict[str, Any]]:
        with self.db.sync_engine("admin").connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]

    def audit(self, where: str = "true", **params: object) -> list[dict[str, Any]]:
        return self.rows(
            f"select * from audit_logs where {where} order by created_at, id", **params
        )

    def execute(self, sql: str, **params: object) -> None:
        with self.db.sync_engine("admin").begin() as conn:
            conn.execute(sa.text(sql), params)


@asynccontextmanager
async def running_api(
    db: Database,
    tmp_path: Path,
    *,
    audit: AuditService | None = None,
    verifier: TokenVerifier | None = None,
    settings: dict[str, Any] | None = None,
) -> AsyncIterator[Api]:
    """The app over a runtime built for this test (``settings``: field changes, e.g.
    ``{"stripe_webhook_secret": ...}``)."""
    world = build_world(db.sync_engine("admin"))
    with db.sync_engine("admin").begin() as conn:
        # The world's placeholder records hold no real ciphertext; tests write their own.
        conn.execute(sa.text("delete from records"))
    signer = DevTokenSigner(os.urandom(32))
    keyring = RecordKeyring.generate("test-k1")
    runtime = Runtime(
        db.settings.with_changes(**(settings or {})),
        db,
        audit=audit,
        spool_dir=tmp_path / "spool",
        token_verifier=verifier or signer,
        record_keyring=keyring,
    )
    app = create_app(runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(app, runtime, client, world, db, signer, keyring)
