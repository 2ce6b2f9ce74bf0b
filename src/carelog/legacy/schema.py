"""Legacy Clerk-era schema of the legacy platform (before organizations / WorkOS).

Used **only** by the ``carelog.legacy`` migration tooling to read (and, in tests, recreate)
legacy databases; the application never writes these tables. It is deliberately kept on its
own metadata objects so it can never be mixed into the canonical :mod:`carelog.db.schema`:

* :class:`LegacyBase` — the 12 tables of the old main database (its Drizzle schema before
  the WorkOS cut-over): ``events``, ``schedules``, ``scheduleAvailabilities``, ``meetings``,
  ``categories``, ``profiles``, ``users``, ``records``, ``payment_transfers``,
  ``scheduling_settings``, ``blocked_dates``, ``slot_reservations``.
* :class:`LegacyAuditBase` — ``audit_logs`` of the separate audit database
  (its own Drizzle schema), which lived behind a different connection URL.

Fidelity rules: column names are reproduced exactly (many are camelCase quoted identifiers);
timestamps are naive ``timestamp without time zone`` as the legacy had; no CHECKs or other fixes
are added. Where the legacy notes are unsure a comment says so. Columns whose presence at
``ea90c06a^`` is doubtful (added by later forks, e.g. ``meetings."guestPhone"``,
``meetings.calendar_creation_claimed``, ``payment_transfers.guest_*``/``service_name``) are
*omitted*: selecting a mapped column that does not exist fails, while unmapped extra columns
are harmless to an importer. Constraint names follow Drizzle's defaults where known.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    TIMESTAMP,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from carelog.db.schema.base import Day, PaymentTransferStatus, enum_values

#: Drizzle's default constraint names (``<table>_<col>_unique``, ``..._<ref>_<refcol>_fk``).
LEGACY_NAMING_CONVENTION: dict[str, str] = {
    "uq": "%(table_name)s_%(column_0_name)s_unique",
    "fk": "%(table_name)s_%(column_0_name)s_%(referred_table_name)s_%(referred_column_0_name)s_fk",
    "pk": "%(table_name)s_pkey",
    "ix": "%(table_name)s_%(column_0_name)s_idx",
}


class LegacyBase(DeclarativeBase):
    """Declarative base of the legacy main database (12 tables). Never mixed with ``Base``."""

    metadata = MetaData(naming_convention=LEGACY_NAMING_CONVENTION)
    type_annotation_map = {datetime: TIMESTAMP(timezone=False)}


class LegacyAuditBase(DeclarativeBase):
    """Declarative base of the legacy *separate* audit database (one table)."""

    metadata = MetaData(naming_convention=LEGACY_NAMING_CONVENTION)
    type_annotation_map = {datetime: TIMESTAMP(timezone=False)}


class LegacySubscriptionStatus(enum.StrEnum):
    """PG enum ``subscription_status`` of the legacy ``users`` table."""

    ACTIVE = "active"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    PAST_DUE = "past_due"
    TRIALING = "trialing"
    UNPAID = "unpaid"


legacy_day_enum = Enum(Day, name="day", values_callable=enum_values)
legacy_payment_transfer_status_enum = Enum(
    PaymentTransferStatus, name="payment_transfer_status_enum", values_callable=enum_values
)
legacy_subscription_status_enum = Enum(
    LegacySubscriptionStatus, name="subscription_status", values_callable=enum_values
)


def _ts(name: str, *, nullable: bool = True, default_now: bool = False) -> Mapped[Any]:
    return mapped_column(
        name,
        TIMESTAMP(timezone=False),
        nullable=nullable,
        server_default=func.now() if default_now else None,
    )


def _created_at() -> Mapped[datetime]:
    return _ts("createdAt", nullable=False, default_now=True)


def _updated_at() -> Mapped[datetime]:
    return _ts("updatedAt", nullable=False, default_now=True)


def _bool(name: str, *, default: bool, nullable: bool) -> Mapped[Any]:
    return mapped_column(
        name, Boolean, nullable=nullable, server_default=true() if default else false()
    )


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()"))


class LegacyEvent(LegacyBase):
    """Legacy ``events`` (owner by Clerk id)."""

    __tablename__ = "events"
    __table_args__ = (Index("events_clerk_user_id_idx", "clerkUserId"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column("name", Text, nullable=False)
    slug: Mapped[str] = mapped_column("slug", Text, nullable=False)
    description: Mapped[str | None] = mapped_column("description", Text)
    duration_in_minutes: Mapped[int] = mapped_column("durationInMinutes", Integer, nullable=False)
    clerk_user_id: Mapped[str] = mapped_column("clerkUserId", Text, nullable=False)
    is_active: Mapped[bool] = _bool("isActive", default=True, nullable=False)
    order: Mapped[int] = mapped_column("order", Integer, nullable=False, server_default="0")
    price: Mapped[int] = mapped_column("price", Integer, nullable=False, server_default="0")
    currency: Mapped[str] = mapped_column(
        "currency", Text, nullable=False, server_default=text("'eur'")
    )
    stripe_product_id: Mapped[str | None] = mapped_column("stripeProductId", Text)
    stripe_price_id: Mapped[str | None] = mapped_column("stripePriceId", Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class LegacySchedule(LegacyBase):
    """Legacy ``schedules`` (one per Clerk user)."""

    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = _uuid_pk()
    timezone: Mapped[str] = mapped_column("timezone", Text, nullable=False)
    clerk_user_id: Mapped[str] = mapped_column("clerkUserId", Text, nullable=False, unique=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class LegacyScheduleAvailability(LegacyBase):
    """Legacy ``scheduleAvailabilities`` (times as ``H:MM`` text)."""

    __tablename__ = "scheduleAvailabilities"
    __table_args__ = (Index("scheduleIdIndex", "scheduleId"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    schedule_id: Mapped[uuid.UUID] = mapped_column(
        "scheduleId", Uuid, ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False
    )
    start_time: Mapped[str] = mapped_column("startTime", Text, nullable=False)
    end_time: Mapped[str] = mapped_column("endTime", Text, nullable=False)
    day_of_week: Mapped[Day] = mapped_column("dayOfWeek", legacy_day_enum, nullable=False)


class LegacyMeeting(LegacyBase):
    """Legacy ``meetings`` (with Stripe refund/payout fields; no org, no guest WorkOS ids)."""

    __tablename__ = "meetings"
    __table_args__ = (
        Index("meetings_clerkUserId_idx", "clerkUserId"),
        Index("meetings_eventId_idx", "eventId"),
        Index("meetings_paymentIntentId_idx", "stripePaymentIntentId"),
        Index("meetings_sessionId_idx", "stripeSessionId"),
        Index("meetings_transferId_idx", "stripeTransferId"),
        Index("meetings_payoutId_idx", "stripe_payout_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    event_id: Mapped[uuid.UUID] = mapped_column(
        "eventId", Uuid, ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    clerk_user_id: Mapped[str] = mapped_column("clerkUserId", Text, nullable=False)
    guest_email: Mapped[str] = mapped_column("guestEmail", Text, nullable=False)
    guest_name: Mapped[str] = mapped_column("guestName", Text, nullable=False)
    guest_notes: Mapped[str | None] = mapped_column("guestNotes", Text)
    start_time: Mapped[datetime] = _ts("startTime", nullable=False)
    end_time: Mapped[datetime] = _ts("endTime", nullable=False)
    timezone: Mapped[str] = mapped_column("timezone", Text, nullable=False)
    meeting_url: Mapped[str | None] = mapped_column("meetingUrl", Text)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(
        "stripePaymentIntentId", Text, unique=True
    )
    stripe_session_id: Mapped[str | None] = mapped_column("stripeSessionId", Text, unique=True)
    stripe_payment_status: Mapped[str | None] = mapped_column(
        "stripePaymentStatus", Text, server_default=text("'pending'")
    )
    stripe_amount: Mapped[int | None] = mapped_column("stripeAmount", Integer)
    stripe_application_fee_amount: Mapped[int | None] = mapped_column(
        "stripeApplicationFeeAmount", Integer
    )
    stripe_application_fee_id: Mapped[str | None] = mapped_column(
        "stripeApplicationFeeId", Text, unique=True
    )
    stripe_refund_id: Mapped[str | None] = mapped_column("stripeRefundId", Text, unique=True)
    stripe_metadata: Mapped[Any] = mapped_column("stripeMetadata", JSON, nullable=True)
    stripe_transfer_id: Mapped[str | None] = mapped_column("stripeTransferId", Text, unique=True)
    stripe_transfer_amount: Mapped[int | None] = mapped_column("stripeTransferAmount", Integer)
    stripe_transfer_status: Mapped[str | None] = mapped_column(
        "stripeTransferStatus", Text, server_default=text("'pending'")
    )
    stripe_transfer_scheduled_at: Mapped[datetime | None] = _ts("stripeTransferScheduledAt")
    stripe_payout_id: Mapped[str | None] = mapped_column("stripe_payout_id", Text, unique=True)
    stripe_payout_amount: Mapped[int | None] = mapped_column("stripe_payout_amount", Integer)
    stripe_payout_failure_code: Mapped[str | None] = mapped_column(
        "stripe_payout_failure_code", Text
    )
    stripe_payout_failure_message: Mapped[str | None] = mapped_column(
        "stripe_payout_failure_message", Text
    )
    stripe_payout_paid_at: Mapped[datetime | None] = _ts("stripe_payout_paid_at")
    last_processed_at: Mapped[datetime | None] = _ts("lastProcessedAt")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class LegacyCategory(LegacyBase):
    """Legacy ``categories`` (``parentId`` without FK, as in the legacy)."""

    __tablename__ = "categories"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column("name", Text, nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column("description", Text)
    image: Mapped[str | None] = mapped_column("image", Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column("parentId", Uuid)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class LegacyProfile(LegacyBase):
    """Legacy ``profiles`` (no ``practitioner_agreement_metadata``)."""

    __tablename__ = "profiles"
    __table_args__ = (Index("profiles_clerkUserId_idx", "clerkUserId"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    clerk_user_id: Mapped[str] = mapped_column("clerkUserId", Text, nullable=False, unique=True)
    profile_picture: Mapped[str | None] = mapped_column("profilePicture", Text)
    first_name: Mapped[str] = mapped_column("firstName", Text, nullable=False)
    last_name: Mapped[str] = mapped_column("lastName", Text, nullable=False)
    headline: Mapped[str | None] = mapped_column("headline", Text)
    short_bio: Mapped[str | None] = mapped_column("shortBio", Text)
    long_bio: Mapped[str | None] = mapped_column("longBio", Text)
    primary_category_id: Mapped[uuid.UUID | None] = mapped_column(
        "primaryCategoryId", Uuid, ForeignKey("categories.id")
    )
    secondary_category_id: Mapped[uuid.UUID | None] = mapped_column(
        "secondaryCategoryId", Uuid, ForeignKey("categories.id")
    )
    social_links: Mapped[Any] = mapped_column("socialLinks", JSON, nullable=True)
    is_verified: Mapped[bool] = _bool("isVerified", default=False, nullable=False)
    is_top_expert: Mapped[bool] = _bool("isTopExpert", default=False, nullable=False)
    # Unsure whether `published` already existed at ea90c06a^ (the canonical table has it and
    # a migration "add-profile-published-status" added it to this table); kept.
    published: Mapped[bool] = _bool("published", default=False, nullable=False)
    practitioner_agreement_accepted_at: Mapped[datetime | None] = _ts(
        "practitioner_agreement_accepted_at"
    )
    practitioner_agreement_version: Mapped[str | None] = mapped_column(
        "practitioner_agreement_version", Text
    )
    practitioner_agreement_ip_address: Mapped[str | None] = mapped_column(
        "practitioner_agreement_ip_address", Text
    )
    order: Mapped[int] = mapped_column("order", Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class LegacyUser(LegacyBase):
    """Legacy ``users`` (Clerk id, Stripe customer subscription, Stripe Connect, identity)."""

    __tablename__ = "users"
    __table_args__ = (
        Index("users_clerk_user_id_idx", "clerkUserId"),
        Index("users_stripe_customer_id_idx", "stripeCustomerId"),
        # Index name unsure (seen in the legacy history); harmless for reads.
        Index("users_stripe_identity_verification_id_idx", "stripe_identity_verification_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    clerk_user_id: Mapped[str] = mapped_column("clerkUserId", Text, nullable=False, unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column("stripeCustomerId", Text, unique=True)
    subscription_id: Mapped[str | None] = mapped_column("subscriptionId", Text)
    subscription_status: Mapped[LegacySubscriptionStatus | None] = mapped_column(
        "subscriptionStatus", legacy_subscription_status_enum
    )
    subscription_price_id: Mapped[str | None] = mapped_column("subscriptionPriceId", Text)
    subscription_current_period_end: Mapped[datetime | None] = _ts("subscriptionCurrentPeriodEnd")
    subscription_canceled_at: Mapped[datetime | None] = _ts("subscriptionCanceledAt")
    has_had_subscription: Mapped[bool | None] = _bool(
        "hasHadSubscription", default=False, nullable=True
    )
    email: Mapped[str] = mapped_column("email", Text, nullable=False)
    first_name: Mapped[str | None] = mapped_column("first_name", Text)
    last_name: Mapped[str | None] = mapped_column("last_name", Text)
    image_url: Mapped[str | None] = mapped_column("image_url", Text)
    stripe_connect_account_id: Mapped[str | None] = mapped_column("stripe_connect_account_id", Text)
    stripe_connect_details_submitted: Mapped[bool | None] = _bool(
        "stripe_connect_details_submitted", default=False, nullable=True
    )
    stripe_connect_charges_enabled: Mapped[bool | None] = _bool(
        "stripe_connect_charges_enabled", default=False, nullable=True
    )
    stripe_connect_payouts_enabled: Mapped[bool | None] = _bool(
        "stripe_connect_payouts_enabled", default=False, nullable=True
    )
    stripe_connect_onboarding_complete: Mapped[bool | None] = _bool(
        "stripe_connect_onboarding_complete", default=False, nullable=True
    )
    stripe_bank_account_last4: Mapped[str | None] = mapped_column("stripe_bank_account_last4", Text)
    stripe_bank_name: Mapped[str | None] = mapped_column("stripe_bank_name", Text)
    stripe_identity_verification_id: Mapped[str | None] = mapped_column(
        "stripe_identity_verification_id", Text
    )
    stripe_identity_verified: Mapped[bool | None] = _bool(
        "stripe_identity_verified", default=False, nullable=True
    )
    stripe_identity_verification_status: Mapped[str | None] = mapped_column(
        "stripe_identity_verification_status", Text
    )
    stripe_identity_verification_last_checked: Mapped[datetime | None] = _ts(
        "stripe_identity_verification_last_checked"
    )
    country: Mapped[str | None] = mapped_column("country", Text, server_default=text("'PT'"))
    welcome_email_sent_at: Mapped[datetime | None] = _ts("welcome_email_sent_at")
    onboarding_completed_at: Mapped[datetime | None] = _ts("onboarding_completed_at")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class LegacyRecord(LegacyBase):
    """Legacy ``records``: notes encrypted with the single app-wide ``ENCRYPTION_KEY``.

    Column names are snake_case as in the legacy source (the legacy notes cite the TS property
    names ``encryptedContent``/``encryptedMetadata``). The packing of ciphertext/IV/tag inside
    the single text column is unsure; the importer must detect it.
    """

    __tablename__ = "records"

    id: Mapped[uuid.UUID] = _uuid_pk()
    meeting_id: Mapped[uuid.UUID] = mapped_column(
        "meeting_id", Uuid, ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False
    )
    expert_id: Mapped[str] = mapped_column(
        "expert_id", Text, ForeignKey("users.clerkUserId"), nullable=False
    )
    guest_email: Mapped[str] = mapped_column("guest_email", Text, nullable=False)
    encrypted_content: Mapped[str] = mapped_column("encrypted_content", Text, nullable=False)
    encrypted_metadata: Mapped[str | None] = mapped_column("encrypted_metadata", Text)
    last_modified_at: Mapped[datetime] = _ts("last_modified_at", nullable=False, default_now=True)
    created_at: Mapped[datetime] = _ts("created_at", nullable=False, default_now=True)
    version: Mapped[int] = mapped_column("version", Integer, nullable=False, server_default="1")


class LegacyPaymentTransfer(LegacyBase):
    """Legacy ``payment_transfers`` (serial id; ``payment_intent_id`` not unique)."""

    __tablename__ = "payment_transfers"

    id: Mapped[int] = mapped_column("id", Integer, primary_key=True, autoincrement=True)
    payment_intent_id: Mapped[str] = mapped_column("payment_intent_id", Text, nullable=False)
    checkout_session_id: Mapped[str] = mapped_column("checkout_session_id", Text, nullable=False)
    event_id: Mapped[str] = mapped_column("event_id", Text, nullable=False)
    expert_connect_account_id: Mapped[str] = mapped_column(
        "expert_connect_account_id", Text, nullable=False
    )
    expert_clerk_user_id: Mapped[str] = mapped_column("expert_clerk_user_id", Text, nullable=False)
    amount: Mapped[int] = mapped_column("amount", Integer, nullable=False)
    currency: Mapped[str] = mapped_column(
        "currency", Text, nullable=False, server_default=text("'eur'")
    )
    platform_fee: Mapped[int] = mapped_column("platform_fee", Integer, nullable=False)
    session_start_time: Mapped[datetime] = _ts("session_start_time", nullable=False)
    scheduled_transfer_time: Mapped[datetime] = _ts("scheduled_transfer_time", nullable=False)
    status: Mapped[PaymentTransferStatus] = mapped_column(
        "status",
        legacy_payment_transfer_status_enum,
        nullable=False,
        server_default=text("'PENDING'"),
    )
    transfer_id: Mapped[str | None] = mapped_column("transfer_id", Text)
    payout_id: Mapped[str | None] = mapped_column("payout_id", Text)
    stripe_error_code: Mapped[str | None] = mapped_column("stripe_error_code", Text)
    stripe_error_message: Mapped[str | None] = mapped_column("stripe_error_message", Text)
    retry_count: Mapped[int | None] = mapped_column("retry_count", Integer, server_default="0")
    requires_approval: Mapped[bool | None] = _bool(
        "requires_approval", default=False, nullable=True
    )
    admin_user_id: Mapped[str | None] = mapped_column("admin_user_id", Text)
    admin_notes: Mapped[str | None] = mapped_column("admin_notes", Text)
    notified_at: Mapped[datetime | None] = _ts("notified_at")
    created: Mapped[datetime] = _ts("created", nullable=False, default_now=True)
    updated: Mapped[datetime] = _ts("updated", nullable=False, default_now=True)


class LegacySchedulingSettings(LegacyBase):
    """Legacy ``scheduling_settings`` (owner in ``user_id``; nullable timestamps)."""

    __tablename__ = "scheduling_settings"

    id: Mapped[int] = mapped_column("id", Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column("user_id", Text, nullable=False, comment="Clerk user id")
    before_event_buffer: Mapped[int] = mapped_column(
        "before_event_buffer", Integer, nullable=False, server_default="0"
    )
    after_event_buffer: Mapped[int] = mapped_column(
        "after_event_buffer", Integer, nullable=False, server_default="0"
    )
    minimum_notice: Mapped[int] = mapped_column(
        "minimum_notice", Integer, nullable=False, server_default="0"
    )
    time_slot_interval: Mapped[int] = mapped_column(
        "time_slot_interval", Integer, nullable=False, server_default="15"
    )
    booking_window_days: Mapped[int] = mapped_column(
        "booking_window_days", Integer, nullable=False, server_default="60"
    )
    created_at: Mapped[datetime | None] = _ts("created_at", default_now=True)
    updated_at: Mapped[datetime | None] = _ts("updated_at", default_now=True)


class LegacyBlockedDate(LegacyBase):
    """Legacy ``blocked_dates`` (owner in ``clerk_user_id``)."""

    __tablename__ = "blocked_dates"

    id: Mapped[int] = mapped_column("id", Integer, primary_key=True, autoincrement=True)
    clerk_user_id: Mapped[str] = mapped_column("clerk_user_id", Text, nullable=False)
    date: Mapped[dt.date] = mapped_column("date", Date, nullable=False)
    timezone: Mapped[str] = mapped_column(
        "timezone", Text, nullable=False, server_default=text("'UTC'")
    )
    reason: Mapped[str | None] = mapped_column("reason", Text)
    created_at: Mapped[datetime] = _ts("created_at", nullable=False, default_now=True)
    updated_at: Mapped[datetime] = _ts("updated_at", nullable=False, default_now=True)


class LegacySlotReservation(LegacyBase):
    """Legacy ``slot_reservations`` with its UNIQUE(event_id, start_time, guest_email)."""

    __tablename__ = "slot_reservations"
    __table_args__ = (
        # Constraint name unsure (the legacy notes give only the columns).
        UniqueConstraint(
            "event_id",
            "start_time",
            "guest_email",
            name="slot_reservations_event_id_start_time_guest_email_unique",
        ),
        Index("slot_reservations_clerk_user_id_idx", "clerk_user_id"),
        Index("slot_reservations_event_id_idx", "event_id"),
        Index("slot_reservations_expires_at_idx", "expires_at"),
        Index("slot_reservations_payment_intent_id_idx", "stripe_payment_intent_id"),
        Index("slot_reservations_session_id_idx", "stripe_session_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    event_id: Mapped[uuid.UUID] = mapped_column(
        "event_id", Uuid, ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    clerk_user_id: Mapped[str] = mapped_column("clerk_user_id", Text, nullable=False)
    guest_email: Mapped[str] = mapped_column("guest_email", Text, nullable=False)
    start_time: Mapped[datetime] = _ts("start_time", nullable=False)
    end_time: Mapped[datetime] = _ts("end_time", nullable=False)
    expires_at: Mapped[datetime] = _ts("expires_at", nullable=False)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(
        "stripe_payment_intent_id", Text, unique=True
    )
    stripe_session_id: Mapped[str | None] = mapped_column("stripe_session_id", Text, unique=True)
    # Reminder columns: present in the legacy source of this table; unsure for ea90c06a^.
    gentle_reminder_sent_at: Mapped[datetime | None] = _ts("gentle_reminder_sent_at")
    urgent_reminder_sent_at: Mapped[datetime | None] = _ts("urgent_reminder_sent_at")
    created_at: Mapped[datetime] = _ts("created_at", nullable=False, default_now=True)
    updated_at: Mapped[datetime] = _ts("updated_at", nullable=False, default_now=True)


class LegacyAuditLog(LegacyAuditBase):
    """``audit_logs`` of the legacy separate audit database (no org, no metadata, no indexes)."""

    __tablename__ = "audit_logs"

    id: Mapped[int] = mapped_column("id", Integer, primary_key=True, autoincrement=True)
    clerk_user_id: Mapped[str] = mapped_column("clerkUserId", Text, nullable=False)
    action: Mapped[str] = mapped_column("action", String(50), nullable=False)
    resource_type: Mapped[str] = mapped_column("resource_type", String(50), nullable=False)
    resource_id: Mapped[str | None] = mapped_column("resource_id", String(255))
    old_values: Mapped[Any] = mapped_column("old_values", JSONB, nullable=True)
    new_values: Mapped[Any] = mapped_column("new_values", JSONB, nullable=True)
    ip_address: Mapped[str | None] = mapped_column("ip_address", String(45))
    user_agent: Mapped[str | None] = mapped_column("user_agent", Text)
    created_at: Mapped[datetime | None] = _ts("created_at", default_now=True)


__all__ = [
    "LegacyAuditBase",
    "LegacyAuditLog",
    "LegacyBase",
    "LegacyBlockedDate",
    "LegacyCategory",
    "LegacyEvent",
    "LegacyMeeting",
    "LegacyPaymentTransfer",
    "LegacyProfile",
    "LegacyRecord",
    "LegacySchedule",
    "LegacyScheduleAvailability",
    "LegacySchedulingSettings",
    "LegacySlotReservation",
    "LegacySubscriptionStatus",
    "LegacyUser",
]
