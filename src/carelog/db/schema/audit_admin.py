"""Tables that govern the audit log: export records, retention policies, legal holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import func

from carelog.db.schema.base import (
    Base,
    CreatedAtMixin,
    OrgScopedMixin,
    TimestampMixin,
    UuidPkMixin,
    check_in,
    table_info,
)

EXPORT_FORMATS = ("jsonl", "csv", "workos")
EXPORT_STATUSES = ("started", "completed", "failed", "aborted")
PURGE_KINDS = ("events", "partition", "held")


class AuditLogExport(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """Every export of the audit log, with its filters and row count (SOC 2: who took what).

    The legacy platform dropped its export table and never recorded exports; here each export is a
    row here *and* an ``AUDIT_LOG_EXPORTED`` event.
    """

    __tablename__ = "audit_log_exports"
    __table_args__ = (
        check_in("format", EXPORT_FORMATS, "format"),
        check_in("status", EXPORT_STATUSES, "status"),
        CheckConstraint("row_count >= 0", name="row_count_nonneg"),
        Index("ix_audit_log_exports_org_created", "org_id", "created_at"),
        table_info("org", "Every export of the audit log: who, when, filters, row count."),
    )

    requested_by: Mapped[str] = mapped_column(Text, nullable=False)
    format: Mapped[str] = mapped_column(Text, nullable=False)
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="started")
    row_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class AuditRetentionPolicy(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """How long an organization keeps events of one action category ('*' = every category).

    Without a row the default applies: six years, HIPAA's documentation retention period.
    """

    __tablename__ = "audit_retention_policies"
    __table_args__ = (
        UniqueConstraint("org_id", "category"),
        CheckConstraint("retention_days >= 1", name="retention_days_positive"),
        table_info("org", "Per-organization retention period of audit events by category."),
    )

    category: Mapped[str] = mapped_column(Text, nullable=False)
    retention_days: Mapped[int] = mapped_column(Integer, nullable=False)
    set_by: Mapped[str] = mapped_column(Text, nullable=False)


class AuditLegalHold(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """A legal hold: while active, retention purges nothing it covers (a subject, or the org)."""

    __tablename__ = "audit_legal_holds"
    __table_args__ = (
        Index("ix_audit_legal_holds_active", "org_id", postgresql_where="released_at IS NULL"),
        CheckConstraint("(released_at IS NULL) = (released_by IS NULL)", name="release_complete"),
        table_info("org", "Legal holds that block retention purges of an org or one subject."),
    )

    reason: Mapped[str] = mapped_column(Text, nullable=False)
    data_subject_id: Mapped[str | None] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(Text, nullable=False)
    released_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    released_by: Mapped[str | None] = mapped_column(Text)


class AuditActionCategory(Base):
    """Which retention category an action belongs to, as the purge function reads it.

    Retention eligibility is computed inside the database (``app.audit_purge_expired``), so the
    database must know each action's category. Rows are registered by the maintenance role and
    never changed or deleted (a trigger refuses it): reclassifying an existing action into a
    shorter-lived category cannot be used to purge it early.
    """

    __tablename__ = "audit_action_categories"
    __table_args__ = (table_info("global", "Retention category of each audited action."),)

    action: Mapped[str] = mapped_column(Text, primary_key=True)
    category: Mapped[str] = mapped_column(Text, nullable=False)
    registered_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )


class AuditPurge(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """Every retention purge, written by the purge functions themselves (append-only).

    ``removed`` counts the deleted events per action; the Merkle leaves of those events stay,
    flagged ``purged``, so which ids went is provable from ``audit_seals``.
    """

    __tablename__ = "audit_purges"
    __table_args__ = (
        check_in("kind", PURGE_KINDS, "kind"),
        CheckConstraint("removed_count >= 0", name="removed_count_nonneg"),
        table_info("org", "Every retention purge: who ran it, what it removed, per action."),
    )

    kind: Mapped[str] = mapped_column(Text, nullable=False)
    purged_by: Mapped[str] = mapped_column(Text, nullable=False, comment="the database role")
    removed: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    removed_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    oldest: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    newest: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    partition_name: Mapped[str | None] = mapped_column(Text)
