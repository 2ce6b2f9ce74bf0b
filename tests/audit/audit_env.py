"""The running-audit-service test environment, importable by name (not via ``conftest``:
two conftest modules exist under tests/audit and would shadow each other)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carelog.audit.api import AuditService
from carelog.db.engine import Database
from carelog.db.session import Scopes
from world import World


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
