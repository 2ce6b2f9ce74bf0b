"""Clinical records (PHI): encrypted notes attached to a meeting."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    TIMESTAMP,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import (
    RECORD_ENCRYPTION_METHODS,
    Base,
    CreatedAtMixin,
    OrgScopedMixin,
    UuidPkMixin,
    check_in,
    table_info,
)


class Record(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """Encrypted clinical note written by an expert for a meeting.

    Fixed vs reference: org_id NOT NULL with a same-org composite FK to meetings and RESTRICT
    (deleting a meeting used to cascade-delete clinical records); ``guest_email`` nullable and
    never written with plaintext; ``key_id`` recorded for key rotation; ``encryption_method``
    and ``version`` CHECKed. ``version`` enables optimistic concurrency (no lost updates).
    """

    __tablename__ = "records"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "meeting_id"],
            ["meetings.org_id", "meetings.id"],
            ondelete="RESTRICT",
            name="fk_records_meeting",
        ),
        check_in("encryption_method", RECORD_ENCRYPTION_METHODS, "encryption_method"),
        CheckConstraint("version >= 1", name="version_pos"),
        Index(None, "meeting_id"),
        Index(None, "expert_id"),
        table_info("org", "Encrypted clinical notes (PHI) written by an expert for a meeting."),
    )

    meeting_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    expert_id: Mapped[str] = mapped_column(Text, nullable=False, comment="author's WorkOS user id")
    guest_email: Mapped[str | None] = mapped_column(
        Text,
        comment=(
            "Kept for compatibility with the reference schema only; carelog never writes "
            "plaintext PII here (NULL or a non-reversible value)."
        ),
    )
    vault_encrypted_content: Mapped[str] = mapped_column(Text, nullable=False)
    vault_encrypted_metadata: Mapped[str | None] = mapped_column(Text)
    encryption_method: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'aes256gcm'")
    )
    key_id: Mapped[str] = mapped_column(
        Text,
        nullable=False,
        server_default=text("'local-v1'"),
        comment="identifier of the key that encrypted this row (for rotation)",
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    last_modified_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
    destroy_after: Mapped[datetime | None] = mapped_column(
        TIMESTAMP(timezone=True),
        comment="set when the patient was erased: kept (encrypted) until retention ends",
    )


__all__ = ["Record"]
