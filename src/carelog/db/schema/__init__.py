"""Canonical SQLAlchemy 2 models of carelog (28 tables, one :class:`Base` metadata).

Table and column names follow the legacy platform's WorkOS-era schema (docs/migrating.md); its
data defects (nullable tenant keys, history-deleting cascades, unchecked vocabularies, missing
uniqueness, naive timestamps) are fixed. See each class docstring for the specifics: "fixed vs
reference" there names the difference from the old design ("the reference", defined in
docs/migrating.md; its Clerk-era tables are declared in ``carelog.legacy.schema``).
"""

from __future__ import annotations

from carelog.db.schema.audit import AuditLog
from carelog.db.schema.audit_admin import (
    AuditActionCategory,
    AuditLegalHold,
    AuditLogExport,
    AuditPurge,
    AuditRetentionPolicy,
)
from carelog.db.schema.base import (
    NAMING_CONVENTION,
    Base,
    CreatedAtMixin,
    Day,
    OrgScopedMixin,
    PaymentTransferStatus,
    TimestampMixin,
    UuidPkMixin,
)
from carelog.db.schema.billing import (
    AnnualPlanEligibility,
    PaymentRef,
    PaymentTransfer,
    SubscriptionEvent,
    SubscriptionPlan,
    TransactionCommission,
)
from carelog.db.schema.booking import (
    BlockedDate,
    Event,
    Meeting,
    Schedule,
    ScheduleAvailability,
    SchedulingSettings,
    SlotReservation,
)
from carelog.db.schema.experts import Category, ExpertApplication, ExpertSetup, Profile
from carelog.db.schema.integrity import AuditCheckpoint, AuditSeal, AuditSealState
from carelog.db.schema.operations import (
    LegacyAuditQuarantine,
    LegacyImportRun,
    StripeWebhookEvent,
)
from carelog.db.schema.records import Record
from carelog.db.schema.streams import AuditStreamCursor
from carelog.db.schema.subjects import (
    AuditSubjectKey,
    DataSubject,
    SubjectDisclosure,
    SubjectErasure,
)
from carelog.db.schema.tenancy import Organization, Role, User, UserOrgMembership

#: Tables that carry ``org_id NOT NULL`` (tenant-scoped; subject to RLS / distribution by org).
#: Derived from each table's ``info["scope"]`` so a new table joins the security suite at once.
TENANT_TABLES: tuple[str, ...] = tuple(
    t.name for t in Base.metadata.sorted_tables if t.info.get("scope") == "org"
)

#: Tables shared by all tenants (no ``org_id``).
GLOBAL_TABLES: tuple[str, ...] = tuple(
    t.name for t in Base.metadata.sorted_tables if t.info.get("scope") == "global"
)

__all__ = [
    "GLOBAL_TABLES",
    "NAMING_CONVENTION",
    "TENANT_TABLES",
    "AnnualPlanEligibility",
    "AuditActionCategory",
    "AuditCheckpoint",
    "AuditLegalHold",
    "AuditLog",
    "AuditLogExport",
    "AuditPurge",
    "AuditRetentionPolicy",
    "AuditSeal",
    "AuditSealState",
    "AuditStreamCursor",
    "AuditSubjectKey",
    "Base",
    "BlockedDate",
    "Category",
    "CreatedAtMixin",
    "DataSubject",
    "Day",
    "Event",
    "ExpertApplication",
    "ExpertSetup",
    "LegacyAuditQuarantine",
    "LegacyImportRun",
    "Meeting",
    "OrgScopedMixin",
    "Organization",
    "PaymentRef",
    "PaymentTransfer",
    "PaymentTransferStatus",
    "Profile",
    "Record",
    "Role",
    "Schedule",
    "ScheduleAvailability",
    "SchedulingSettings",
    "SlotReservation",
    "StripeWebhookEvent",
    "SubjectDisclosure",
    "SubjectErasure",
    "SubscriptionEvent",
    "SubscriptionPlan",
    "TimestampMixin",
    "TransactionCommission",
    "User",
    "UserOrgMembership",
    "UuidPkMixin",
]
