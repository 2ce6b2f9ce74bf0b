"""Where each audit log stream stands: its cursor into the trail, deliveries, errors and lag."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Double,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import Base, check_in, table_info

STREAM_KINDS = ("nats", "webhook")


class AuditStreamCursor(Base):
    """One destination's cursor: the last delivered event in ``(txid, created_at, id)`` order.

    Global (a stream carries every organization's events in one order); only the system role
    reads or writes it. The position starts before the first event (txid 0, the epoch, the nil
    uuid: txid 0 alone puts it before every event) and only moves forward, in the transaction
    that confirmed the delivery.
    """

    __tablename__ = "audit_stream_cursors"
    __table_args__ = (
        check_in("kind", STREAM_KINDS, "kind"),
        table_info("global", "Audit log streams: each destination's cursor, lag and errors."),
    )

    destination: Mapped[str] = mapped_column(
        Text, primary_key=True, comment="the destination URL without credentials"
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    position_txid: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    position_created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=text("'1970-01-01 00:00:00+00'")
    )
    position_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        nullable=False,
        server_default=text("'00000000-0000-0000-0000-000000000000'"),
    )
    delivered_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    lag_events: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0", comment="as last measured by the runner"
    )
    lag_seconds: Mapped[float] = mapped_column(Double, nullable=False, server_default="0")
    error_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    last_delivered_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )


__all__ = ["STREAM_KINDS", "AuditStreamCursor"]
