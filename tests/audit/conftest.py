"""A running audit service on a fresh migrated database with the two-tenant world."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from audit_env import AuditEnv

from carelog.audit.api import configure_audit
from carelog.audit.setup import create_audit_service
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform.audit_catalog import build_catalog
from world import build_world


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
