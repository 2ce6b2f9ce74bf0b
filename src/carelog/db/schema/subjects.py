"""Data subjects (patients) and what GDPR/HIPAA need about them: audit data keys, erasures,
the disclosures register.

A data subject is named inside one organization by an opaque id (a WorkOS user id, or a carelog
``subj_…`` id for an anonymous guest). The e-mail that identified them is never stored: only a
keyed hash of the normalised address (``email_token``), cleared when the subject is erased, so
a booking made after erasure starts a new subject and a guessed address cannot be confirmed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import TIMESTAMP, CheckConstraint, Index, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import (
    Base,
    CreatedAtMixin,
    OrgScopedMixin,
    UuidPkMixin,
    check_in,
    table_info,
)

SUBJECT_KINDS = ("workos", "carelog")
ERASURE_STATUSES = ("requested", "completed", "refused")


class DataSubject(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """A patient (or other person whose data the organization holds), by opaque id."""

    __tablename__ = "data_subjects"
    __table_args__ = (
        UniqueConstraint("org_id", "subject_id"),
        UniqueConstraint("org_id", "email_token"),
        check_in("kind", SUBJECT_KINDS, "kind"),
        table_info("org", "Data subjects (patients) by opaque id; e-mail only as a keyed hash."),
    )

    subject_id: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    email_token: Mapped[str | None] = mapped_column(
        Text, comment="keyed hash of the normalised e-mail; NULL once erased"
    )
    workos_user_id: Mapped[str | None] = mapped_column(Text)
    erased_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class AuditSubjectKey(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """A subject's audit data key, wrapped by a key-encryption key; destroyed on erasure."""

    __tablename__ = "audit_subject_keys"
    __table_args__ = (
        UniqueConstraint("org_id", "subject_id"),
        CheckConstraint(
            "(destroyed_at IS NULL) = (wrapped_key IS NOT NULL)", name="destroyed_xor_key"
        ),
        table_info("org", "Per-subject audit data keys (wrapped); destroying one erases values."),
    )

    subject_id: Mapped[str] = mapped_column(Text, nullable=False)
    key_id: Mapped[str] = mapped_column(Text, nullable=False, comment="public id of the data key")
    kek_id: Mapped[str] = mapped_column(Text, nullable=False, comment="key that wraps it")
    wrapped_key: Mapped[str | None] = mapped_column(Text, comment="base64; NULL once destroyed")
    rotated_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    destroyed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class SubjectErasure(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """One erasure request (GDPR Art. 17): recorded first, then carried out in one transaction."""

    __tablename__ = "subject_erasures"
    __table_args__ = (
        check_in("status", ERASURE_STATUSES, "status"),
        Index("ix_subject_erasures_org_subject", "org_id", "subject_id"),
        table_info("org", "Erasure requests and their outcome (what was erased or why refused)."),
    )

    subject_id: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    requested_by: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="requested")
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class SubjectDisclosure(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """Append-only register of disclosures outside the platform (HIPAA §164.528)."""

    __tablename__ = "subject_disclosures"
    __table_args__ = (
        Index("ix_subject_disclosures_org_subject", "org_id", "subject_id"),
        table_info("org", "Disclosures of a subject's data outside the platform (append-only)."),
    )

    subject_id: Mapped[str] = mapped_column(Text, nullable=False)
    recipient: Mapped[str] = mapped_column(Text, nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    disclosed_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    recorded_by: Mapped[str] = mapped_column(Text, nullable=False)


__all__ = ["AuditSubjectKey", "DataSubject", "SubjectDisclosure", "SubjectErasure"]
