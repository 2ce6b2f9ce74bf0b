"""Building the audit service from settings: the writer's connection, spool and mask key."""

from __future__ import annotations

import os
from pathlib import Path

from carelog.audit.api import AuditService
from carelog.audit.catalog import AuditCatalog
from carelog.audit.events import Masker
from carelog.audit.spool import Spool
from carelog.audit.writer import AuditWriter
from carelog.core.secrets import load_secret
from carelog.db.engine import Database


def spool_directory(database: Database) -> Path:
    override = os.environ.get("CARELOG_AUDIT_SPOOL_DIR")
    return Path(override) if override else Path(database.settings.data_dir) / "audit-spool"


def create_audit_service(
    database: Database, catalog: AuditCatalog, *, spool_dir: Path | None = None
) -> AuditService:
    key = load_secret(database.settings, "CARELOG_AUDIT_MASK_KEY", "audit-mask-key")
    conninfo = database.writer_url.set(drivername="postgresql").render_as_string(
        hide_password=False
    )
    writer = AuditWriter(conninfo, Spool(spool_dir or spool_directory(database)))
    return AuditService(
        catalog=catalog, masker=Masker(key, catalog.sensitive_fields), writer=writer
    )
