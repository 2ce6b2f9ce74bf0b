"""A running audit service on a fresh migrated database with the two-tenant world."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from carelog.audit.api import AuditService, configure_audit
from carelog.audit.setup import create_audit_service
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform.audit_catalog import build_catalog
from world import World, build_world


@dataclass
class AuditEnv:
    db: Database
    world: World
    service: AuditService
    scopes: Scopes
    spool_dir: Path

    def count(self, where: str = "true", **params: object) -> int:
        import sqlalchemy as sa

        with self.db.sync_engine("admin").connect() as conn:
            return int(
                conn.execute(
                    sa.text(f"select count(*) from audit_logs where {where}"), params
                ).scalar_one()
            )


@pytest.fixture
async def audit_env(fresh_db: Database, tmp_path: Path) -> AsyncIterator[AuditEnv]:
    world = build_world(fresh_db.sync_engine("admin"))
    service = create_audit_service(fresh_db, build_catalog(), spool_dir=tmp_path / "spool")
    configure_audit(service)
    await service.start()
    env = AuditEnv(fresh_db, world, service, Scopes(fresh_db), tmp_path / "spool")
    try:
        yield env
    finally:
        await service.stop()
        configure_audit(None)
        await fresh_db.dispose()
