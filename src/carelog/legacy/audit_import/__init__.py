"""Import of the legacy separate audit database into the unified ``audit_logs``.

``source`` reads and checks the legacy table, ``mapping`` maps Clerk users and the old
vocabulary, ``importer`` writes, quarantines and reconciles. ``carelog legacy import-audit``
(``carelog.cli.legacy_commands``) wires them together; docs/migrating.md explains the procedure.
"""

from carelog.legacy.audit_import.errors import (
    LegacySourceShapeError,
    LegacySourceUnavailableError,
    MappingFileError,
)
from carelog.legacy.audit_import.importer import (
    IMPORT_ACTOR,
    LEGACY_NAMESPACE,
    ImportCounts,
    ImportReport,
    LegacyAuditImporter,
    legacy_event_id,
    reconciliation_table,
    record_import_run,
)
from carelog.legacy.audit_import.mapping import (
    Identity,
    IdentityResolver,
    Vocabulary,
    read_org_map,
    read_user_map,
)
from carelog.legacy.audit_import.source import LegacyRow, LegacySource

__all__ = [
    "IMPORT_ACTOR",
    "LEGACY_NAMESPACE",
    "Identity",
    "IdentityResolver",
    "ImportCounts",
    "ImportReport",
    "LegacyAuditImporter",
    "LegacyRow",
    "LegacySource",
    "LegacySourceShapeError",
    "LegacySourceUnavailableError",
    "MappingFileError",
    "Vocabulary",
    "legacy_event_id",
    "read_org_map",
    "read_user_map",
    "reconciliation_table",
    "record_import_run",
]
