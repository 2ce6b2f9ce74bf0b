"""Operational records that belong to no single tenant: webhook de-duplication, legacy imports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import Base, UuidPkMixin, check_in, table_info

WEBHOOK_STATUSES = ("processing", "processed", "failed")
IMPORT_STATUSES = ("running", "completed", "failed")


class StripeWebhookEvent(Base):
    """Every Stripe event id we accepted, so a redelivery changes nothing and logs nothing twice.

    Global: the organization is known only once the event is parsed (``org_id`` is filled
    then). Only the system role reads or writes it.
    """

    __tablename__ = "stripe_webhook_events"
    __table_args__ = (
        check_in("status", WEBHOOK_STATUSES, "status"),
        table_info("global", "Stripe event ids already handled (webhook idempotency)."),
    )

    stripe_event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    org_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="processing")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class LegacyImportRun(UuidPkMixin, Base):
    """One run of ``carelog legacy import-audit``, with its reconciliation counts."""

    __tablename__ = "legacy_import_runs"
    __table_args__ = (
        check_in("status", IMPORT_STATUSES, "status"),
        table_info("global", "Runs of the legacy audit import and their reconciliation."),
    )

    source: Mapped[str] = mapped_column(Text, nullable=False, comment="source fingerprint")
    started_by: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    started_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class LegacyAuditQuarantine(Base):
    """Legacy audit rows that could not be mapped: never dropped, kept here with the reason."""

    __tablename__ = "legacy_audit_quarantine"
    __table_args__ = (
        PrimaryKeyConstraint("source", "legacy_id"),
        table_info("global", "Legacy audit rows that could not be imported, with the reason."),
    )

    source: Mapped[str] = mapped_column(Text, nullable=False)
    legacy_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    row: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("legacy_import_runs.id", ondelete="RESTRICT"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
    resolved_at: Mapped[datetime | None] = mapped_column(
        TIMESTAMP(timezone=True), comment="set when a later run imported the row"
    )
    resolved_run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("legacy_import_runs.id", ondelete="RESTRICT")
    )
