"""The tamper-evidence layer: per-organization Merkle leaves, signed checkpoints, sealer state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Boolean,
    CheckConstraint,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import Base, OrgScopedMixin, table_info


class AuditSeal(OrgScopedMixin, Base):
    """Leaf ``seq`` of an organization's Merkle tree: which event, and its leaf hash.

    Kept when retention purges the event itself (``purged``), so the tree and every signed
    checkpoint still verify after old events are dropped.
    """

    __tablename__ = "audit_seals"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "seq"),
        UniqueConstraint("org_id", "event_id"),
        CheckConstraint("seq >= 0", name="seq_nonneg"),
        CheckConstraint("octet_length(leaf_hash) = 32", name="leaf_hash_len"),
        table_info("org", "Merkle leaves of the audit log: event, position, leaf hash."),
    )

    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    event_created_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    purged: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    sealed_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )


class AuditCheckpoint(OrgScopedMixin, Base):
    """A signed statement: the org's tree had ``tree_size`` leaves with this root at this time,
    chained to the previous checkpoint (CloudTrail-style digest chain)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "tree_size"),
        CheckConstraint("tree_size >= 0", name="tree_size_nonneg"),
        table_info("org", "Signed checkpoints (tree size, root, time, previous) per org."),
    )

    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    previous_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(Text, nullable=False)
    signature: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    checkpoint_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")


class AuditSealState(OrgScopedMixin, Base):
    """Where the sealer stopped for one org: tree size, compact frontier, transaction horizon."""

    __tablename__ = "audit_seal_state"
    __table_args__ = (
        PrimaryKeyConstraint("org_id"),
        table_info("org", "The sealer's progress per org (tree size, frontier, horizon)."),
    )

    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    frontier: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    horizon_txid: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
