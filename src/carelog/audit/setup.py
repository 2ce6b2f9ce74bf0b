"""Building the audit service from settings: the writer's connection, spool and mask key."""

from __future__ import annotations

from pathlib import Path

from carelog.audit.api import AuditService
from carelog.audit.catalog import AuditCatalog
from carelog.audit.events import Masker
from carelog.audit.spool import Spool
from carelog.audit.subject_keys import KekRing, SubjectKeyStore
from carelog.audit.writer import AuditWriter
from carelog.core.secrets import load_secret
from carelog.core.settings import Settings
from carelog.db.conninfo import libpq_conninfo
from carelog.db.engine import Database
from carelog.db.session import Scopes


def audit_mask_key(settings: Settings) -> bytes:
    """The deployment's audit mask key (environment, else the development key file)."""
    return load_secret(settings, "audit_mask_key", "audit-mask-key")


def create_audit_service(
    database: Database,
    catalog: AuditCatalog,
    *,
    spool_dir: Path | None = None,
    keks: KekRing | None = None,
) -> AuditService:
    key = audit_mask_key(database.settings)
    conninfo = libpq_conninfo(database.writer_url)
    writer = AuditWriter(conninfo, Spool(spool_dir or database.settings.spool_dir))
    store = SubjectKeyStore(Scopes(database), keks or KekRing.from_settings(database.settings))
    return AuditService(
        catalog=catalog,
        masker=Masker(key, catalog.sensitive_fields, catalog.personal_fields),
        writer=writer,
        subject_keys=store,
    )
