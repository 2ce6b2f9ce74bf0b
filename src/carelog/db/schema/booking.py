"""Booking: events, schedules, schedule_availabilities, scheduling_settings, blocked_dates,
slot_reservations, meetings."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime, time

from sqlalchemy import (
    TIMESTAMP,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carelog.db.schema.base import (
    MEETING_PAYMENT_STATUSES,
    MEETING_STATUSES,
    MEETING_TRANSFER_STATUSES,
    Base,
    Day,
    OrgScopedMixin,
    TimestampMixin,
    UuidPkMixin,
    check_in,
    check_nonneg,
    enum_values,
    table_info,
)

day_enum = Enum(Day, name="day", values_callable=enum_values, validate_strings=True)


class Event(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """A bookable service offered by an expert (duration, price, Stripe product).

    Fixed vs reference: org_id NOT NULL; slug unique per expert (was not unique at all);
    duration/price/currency CHECKed; UNIQUE(org_id, id) target for same-org composite FKs.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("org_id", "id"),
        UniqueConstraint("org_id", "workos_user_id", "slug"),
        CheckConstraint("duration_in_minutes BETWEEN 1 AND 720", name="duration"),
        CheckConstraint("price >= 0", name="price_nonneg"),
        CheckConstraint("currency ~ '^[a-z]{3}$'", name="currency"),
        table_info("org", "Bookable services (type, duration, price) offered by an expert."),
    )

    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    slug: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    duration_in_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=true())
    order: Mapped[int] = mapped_column("order", Integer, nullable=False, server_default="0")
    price: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0", comment="cents")
    currency: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'eur'"))
    stripe_product_id: Mapped[str | None] = mapped_column(Text)
    stripe_price_id: Mapped[str | None] = mapped_column(Text)


class Schedule(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """An expert's availability schedule (its IANA timezone); windows live in children.

    Fixed vs reference: org_id NOT NULL; uniqueness per (org, user); UNIQUE(org_id, id) target.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("org_id", "id"),
        UniqueConstraint("org_id", "workos_user_id"),
        table_info("org", "One availability schedule (timezone) per expert."),
    )

    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, comment="IANA timezone name")

    availabilities: Mapped[list[ScheduleAvailability]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan", passive_deletes=True
    )


class ScheduleAvailability(UuidPkMixin, OrgScopedMixin, Base):
    """Weekly recurring availability window of a schedule (configuration, cascades).

    Fixed vs reference: gains org_id with a composite same-org FK to schedules; times are
    ``time`` (were ``H:MM`` text) with CHECK start < end. No timestamps, as in the reference.
    """

    __tablename__ = "schedule_availabilities"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "schedule_id"],
            ["schedules.org_id", "schedules.id"],
            ondelete="CASCADE",
            name="fk_schedule_availabilities_schedule",
        ),
        CheckConstraint("start_time < end_time", name="time_order"),
        Index(None, "schedule_id"),
        table_info("org", "Weekly recurring time windows of an expert's schedule."),
    )

    schedule_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    start_time: Mapped[time] = mapped_column(
        Time, nullable=False, comment="wall-clock time in the schedule's timezone"
    )
    end_time: Mapped[time] = mapped_column(Time, nullable=False)
    day_of_week: Mapped[Day] = mapped_column(day_enum, nullable=False)

    schedule: Mapped[Schedule] = relationship(back_populates="availabilities")


class SchedulingSettings(OrgScopedMixin, TimestampMixin, Base):
    """Booking rules of an expert (buffers, minimum notice, slot interval, booking window).

    Fixed vs reference: one row per (org, user) (was not unique); non-negative/positive
    CHECKs; timestamps NOT NULL (were nullable).
    """

    __tablename__ = "scheduling_settings"
    __table_args__ = (
        UniqueConstraint("org_id", "workos_user_id"),
        *check_nonneg("before_event_buffer", "after_event_buffer", "minimum_notice"),
        CheckConstraint("time_slot_interval > 0", name="time_slot_interval_pos"),
        CheckConstraint("booking_window_days > 0", name="booking_window_days_pos"),
        table_info("org", "Per-expert booking rules: buffers, notice, slot interval, window."),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True, sort_order=-100)
    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False)
    before_event_buffer: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", comment="minutes"
    )
    after_event_buffer: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", comment="minutes"
    )
    minimum_notice: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", comment="minutes"
    )
    time_slot_interval: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="15", comment="minutes"
    )
    booking_window_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="60")


class BlockedDate(OrgScopedMixin, TimestampMixin, Base):
    """A whole calendar day (in ``timezone``) on which an expert takes no bookings.

    Fixed vs reference: org_id NOT NULL; UNIQUE(org_id, workos_user_id, date) (duplicates
    were possible). The unique index also serves per-user lookups.
    """

    __tablename__ = "blocked_dates"
    __table_args__ = (
        UniqueConstraint("org_id", "workos_user_id", "date"),
        Index(None, "date"),
        table_info("org", "Days on which an expert is unavailable for bookings."),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True, sort_order=-100)
    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False)
    date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'UTC'"))
    reason: Mapped[str | None] = mapped_column(Text)


class SlotReservation(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """Temporary hold on a slot while a guest completes checkout (active while not expired).

    Fixed vs reference: restores the legacy UNIQUE(event, start, guest) (now org-leading);
    Stripe ids unique per org; CHECK end > start; composite same-org FK to events (RESTRICT).
    """

    __tablename__ = "slot_reservations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "event_id"],
            ["events.org_id", "events.id"],
            ondelete="RESTRICT",
            name="fk_slot_reservations_event",
        ),
        UniqueConstraint("org_id", "event_id", "start_time", "guest_email"),
        UniqueConstraint("org_id", "stripe_payment_intent_id"),
        UniqueConstraint("org_id", "stripe_session_id"),
        CheckConstraint("end_time > start_time", name="time_order"),
        Index(None, "expires_at"),
        Index(None, "workos_user_id"),
        table_info("org", "Short-lived holds on a booking slot during payment checkout."),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False, comment="the expert")
    guest_email: Mapped[str] = mapped_column(Text, nullable=False)
    start_time: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(Text)
    stripe_session_id: Mapped[str | None] = mapped_column(Text)
    gentle_reminder_sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    urgent_reminder_sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class Meeting(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """A booked appointment between an expert (host) and a guest/patient.

    Fixed vs reference: event FK is a same-org composite FK with RESTRICT (deleting an event
    used to cascade away booking history); explicit ``status``/``cancelled_at``; payment and
    transfer statuses NOT NULL + CHECKed; ``guest_org_id`` is a real FK; and a partial unique
    index ``uq_meetings_active_slot`` makes double-booking impossible at the DB level.
    """

    __tablename__ = "meetings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "event_id"],
            ["events.org_id", "events.id"],
            ondelete="RESTRICT",
            name="fk_meetings_event",
        ),
        UniqueConstraint("org_id", "id"),
        UniqueConstraint("org_id", "stripe_payment_intent_id"),
        UniqueConstraint("org_id", "stripe_session_id"),
        UniqueConstraint("org_id", "stripe_transfer_id"),
        check_in("status", MEETING_STATUSES, "status"),
        check_in("stripe_payment_status", MEETING_PAYMENT_STATUSES, "payment_status"),
        check_in("stripe_transfer_status", MEETING_TRANSFER_STATUSES, "transfer_status"),
        CheckConstraint("end_time > start_time", name="time_order"),
        *check_nonneg("stripe_amount", "stripe_application_fee_amount", "stripe_transfer_amount"),
        Index(
            "uq_meetings_active_slot",
            "org_id",
            "workos_user_id",
            "start_time",
            unique=True,
            postgresql_where=text(
                "status = 'booked' AND stripe_payment_status NOT IN ('failed', 'refunded')"
            ),
        ),
        Index(None, "event_id"),
        Index(None, "workos_user_id"),
        Index(None, "guest_workos_user_id"),
        Index(None, "guest_org_id"),
        Index("ix_meetings_org_subject", "org_id", "data_subject_id"),
        table_info("org", "Booked appointments between an expert and a guest, with payment state."),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False, comment="the expert")
    guest_workos_user_id: Mapped[str | None] = mapped_column(Text)
    guest_org_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    guest_email: Mapped[str] = mapped_column(Text, nullable=False)
    guest_name: Mapped[str] = mapped_column(Text, nullable=False)
    guest_notes: Mapped[str | None] = mapped_column(Text)
    data_subject_id: Mapped[str | None] = mapped_column(
        Text, comment="the patient as a data subject of this org (WorkOS user or subj_ id)"
    )
    start_time: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, comment="guest's timezone")
    meeting_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'booked'"))
    cancelled_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(Text)
    stripe_session_id: Mapped[str | None] = mapped_column(Text)
    stripe_payment_status: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'pending'")
    )
    stripe_amount: Mapped[int | None] = mapped_column(Integer, comment="cents")
    stripe_application_fee_amount: Mapped[int | None] = mapped_column(Integer, comment="cents")
    stripe_transfer_id: Mapped[str | None] = mapped_column(Text)
    stripe_transfer_amount: Mapped[int | None] = mapped_column(Integer, comment="cents")
    stripe_transfer_status: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'pending'")
    )
    stripe_transfer_scheduled_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


__all__ = [
    "BlockedDate",
    "Event",
    "Meeting",
    "Schedule",
    "ScheduleAvailability",
    "SchedulingSettings",
    "SlotReservation",
    "day_enum",
]
