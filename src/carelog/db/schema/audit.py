"""The unified audit trail (``audit_logs``), RANGE-partitioned by ``created_at``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import (
    AUDIT_ACTOR_TYPES,
    AUDIT_OUTCOMES,
    AUDIT_SOURCES,
    Base,
    check_in,
)


class AuditLog(Base):
    """One audit event: who (actor) did what (action) to which resource, in which org.

    Fixed vs reference: ``org_id`` NOT NULL with an FK (was nullable, no FK); ids are supplied
    by the writer (uuid7, time-ordered) so spooled/replayed events keep their identity;
    ``actor_type``/``outcome``/``source`` CHECKed; ``data_subject_id`` supports GDPR
    subject-access queries; ``ip_address`` is ``inet``; RANGE partitioning by ``created_at``
    makes retention a partition drop rather than a DELETE. The PK therefore includes
    ``created_at`` (Postgres requires the partition key in every unique constraint).
    """

    __tablename__ = "audit_logs"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "created_at", "id"),
        check_in("actor_type", AUDIT_ACTOR_TYPES, "actor_type"),
        check_in("outcome", AUDIT_OUTCOMES, "outcome"),
        check_in("source", AUDIT_SOURCES, "source"),
        CheckConstraint(
            "metadata IS NULL OR jsonb_typeof(metadata) = 'object'", name="metadata_object"
        ),
        Index("ix_audit_logs_org_action", "org_id", "action", "created_at"),
        Index("ix_audit_logs_org_actor", "org_id", "workos_user_id", "created_at"),
        Index("ix_audit_logs_org_resource", "org_id", "resource_type", "resource_id", "created_at"),
        Index(
            "ix_audit_logs_org_subject",
            "org_id",
            "data_subject_id",
            "created_at",
            postgresql_where=text("data_subject_id IS NOT NULL"),
        ),
        Index("ix_audit_logs_id", "id"),
        Index("ix_audit_logs_org_txid", "org_id", "txid"),
        Index("ix_audit_logs_txid", "txid"),
        {
            "info": {
                "scope": "org",
                "summary": "Unified, append-only audit trail of security-relevant actions.",
            },
            "postgresql_partition_by": "RANGE (created_at)",
        },
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, comment="uuid7 from the writer")
    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    workos_user_id: Mapped[str] = mapped_column(
        Text,
        nullable=False,
        comment="actor: a WorkOS user id or a system actor such as 'system:stripe-webhook'",
    )
    actor_type: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    resource_type: Mapped[str] = mapped_column(Text, nullable=False)
    resource_id: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'success'"))
    data_subject_id: Mapped[str | None] = mapped_column(
        Text, comment="the person the data is about (GDPR subject access / erasure)"
    )
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
    source: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'live'"))
    schema_version: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")
    # The inserting transaction's id: readers behind the writer (sealer, streams) take only
    # events of transactions older than every running one, so a late commit is never skipped.
    txid: Mapped[int] = mapped_column(
        BigInteger,
        nullable=False,
        server_default=text("(pg_current_xact_id())::text::bigint"),
    )


__all__ = ["AuditLog"]
