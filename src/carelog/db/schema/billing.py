"""Billing: payment_transfers, subscription_plans, transaction_commissions,
annual_plan_eligibility, subscription_events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    Boolean,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import (
    BILLING_INTERVALS,
    COMMISSION_STATUSES,
    PLAN_TYPES,
    SUBSCRIPTION_EVENT_TYPES,
    SUBSCRIPTION_STATUSES,
    TIER_LEVELS,
    Base,
    CreatedAtMixin,
    OrgScopedMixin,
    PaymentTransferStatus,
    TimestampMixin,
    UuidPkMixin,
    check_in,
    check_nonneg,
    enum_values,
    table_info,
)

payment_transfer_status_enum = Enum(
    PaymentTransferStatus,
    name="payment_transfer_status_enum",
    values_callable=enum_values,
    validate_strings=True,
)


class PaymentTransfer(OrgScopedMixin, Base):
    """Scheduled payout of an expert's share of a paid booking to their Stripe Connect account.

    Fixed vs reference: org_id NOT NULL; UNIQUE(org_id, payment_intent_id) stops duplicate
    transfers for one PaymentIntent; amounts CHECKed; retry/approval flags NOT NULL;
    timestamptz. Odd column names (``created``/``updated``, ``expert_clerk_user_id`` holding
    a WorkOS id, ``event_id`` as text) are kept for compatibility.
    """

    __tablename__ = "payment_transfers"
    __table_args__ = (
        UniqueConstraint("org_id", "payment_intent_id"),
        *check_nonneg("amount", "platform_fee", "retry_count"),
        Index(None, "expert_connect_account_id"),
        Index(None, "status", "scheduled_transfer_time"),
        table_info("org", "Scheduled Stripe Connect payouts of an expert's share of a payment."),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True, sort_order=-100)
    payment_intent_id: Mapped[str] = mapped_column(Text, nullable=False)
    checkout_session_id: Mapped[str] = mapped_column(Text, nullable=False)
    event_id: Mapped[str] = mapped_column(Text, nullable=False, comment="event uuid as text")
    expert_connect_account_id: Mapped[str] = mapped_column(Text, nullable=False)
    expert_clerk_user_id: Mapped[str] = mapped_column(
        Text, nullable=False, comment="misnamed in the reference: holds the WorkOS user id"
    )
    amount: Mapped[int] = mapped_column(Integer, nullable=False, comment="expert share, cents")
    currency: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'eur'"))
    platform_fee: Mapped[int] = mapped_column(Integer, nullable=False, comment="cents")
    session_start_time: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True), nullable=False)
    scheduled_transfer_time: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False
    )
    status: Mapped[PaymentTransferStatus] = mapped_column(
        payment_transfer_status_enum,
        nullable=False,
        server_default=text("'PENDING'"),
    )
    transfer_id: Mapped[str | None] = mapped_column(Text)
    payout_id: Mapped[str | None] = mapped_column(Text)
    stripe_error_code: Mapped[str | None] = mapped_column(Text)
    stripe_error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    requires_approval: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    admin_user_id: Mapped[str | None] = mapped_column(Text)
    admin_notes: Mapped[str | None] = mapped_column(Text)
    notified_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    created: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now(), sort_order=100
    )
    updated: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now(), sort_order=101
    )


PAYMENT_REF_KINDS = ("payment_intent", "checkout_session", "charge", "account", "event")


class PaymentRef(OrgScopedMixin, Base):
    """Which organization a Stripe object (or a bookable event) belongs to.

    Stripe does not copy metadata onto every object (disputes and refunds carry ``{}``), and the
    system role sees one organization at a time, so the webhook could not find the tenant of a
    dispute from the data it already holds. Every id carelog records at payment time (payment
    intent, checkout session, charge, Connect account, event type id) gets a row here, written
    by triggers and by the webhook in the owning organization's scope; the only cross-tenant
    read is ``app.payment_ref_orgs``, which returns organization ids and nothing else.
    """

    __tablename__ = "payment_refs"
    __table_args__ = (
        PrimaryKeyConstraint("ref", "org_id"),
        check_in("kind", PAYMENT_REF_KINDS, "kind"),
        table_info("org", "Stripe object ids (and event ids) -> the organization that owns them."),
    )

    ref: Mapped[str] = mapped_column(Text, nullable=False, sort_order=-100)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    payment_intent_id: Mapped[str | None] = mapped_column(
        Text, comment="for a charge: the payment intent it belongs to"
    )
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now(), sort_order=100
    )


class SubscriptionPlan(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """The (single) subscription of an organization: commission, monthly or annual plan.

    Fixed vs reference: org FK RESTRICT (was CASCADE); vocabularies CHECKed; Stripe
    subscription id unique per org; UNIQUE(org_id, id) target for subscription_events.
    """

    __tablename__ = "subscription_plans"
    __table_args__ = (
        UniqueConstraint("org_id", name="uq_subscription_plans_org_id"),
        UniqueConstraint("org_id", "id"),
        UniqueConstraint("org_id", "stripe_subscription_id"),
        check_in("plan_type", PLAN_TYPES, "plan_type"),
        check_in("tier_level", TIER_LEVELS, "tier_level"),
        check_in("billing_interval", BILLING_INTERVALS, "billing_interval", nullable=True),
        check_in(
            "subscription_status", SUBSCRIPTION_STATUSES, "subscription_status", nullable=True
        ),
        check_in("previous_plan_type", PLAN_TYPES, "previous_plan_type", nullable=True),
        *check_nonneg(
            "commission_rate", "monthly_fee", "annual_fee", "commissions_paid_before_upgrade"
        ),
        Index(None, "plan_type"),
        table_info("org", "Subscription plan (commission/monthly/annual) of an organization."),
    )

    billing_admin_user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.workos_user_id", ondelete="RESTRICT"), nullable=False, index=True
    )
    plan_type: Mapped[str] = mapped_column(Text, nullable=False)
    tier_level: Mapped[str] = mapped_column(Text, nullable=False)
    commission_rate: Mapped[int | None] = mapped_column(Integer, comment="basis points")
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text)
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    stripe_price_id: Mapped[str | None] = mapped_column(Text)
    billing_interval: Mapped[str | None] = mapped_column(Text)
    monthly_fee: Mapped[int | None] = mapped_column(Integer, comment="cents")
    annual_fee: Mapped[int | None] = mapped_column(Integer, comment="cents")
    subscription_start_date: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    subscription_end_date: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    subscription_status: Mapped[str | None] = mapped_column(Text)
    auto_renew: Mapped[bool | None] = mapped_column(Boolean, server_default=true())
    previous_plan_type: Mapped[str | None] = mapped_column(Text)
    upgraded_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    commissions_paid_before_upgrade: Mapped[int | None] = mapped_column(Integer)
    is_eligible_for_annual: Mapped[bool | None] = mapped_column(Boolean, server_default=false())
    eligibility_notification_sent: Mapped[bool | None] = mapped_column(
        Boolean, server_default=false()
    )
    eligibility_last_checked: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class TransactionCommission(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """Platform commission taken on one paid booking (financial history).

    Fixed vs reference: every FK RESTRICT (history was cascade-deleted with its meeting, user
    or org); meeting and payment-intent FKs are same-org composites; status defaulted and
    CHECKed; amounts non-negative; one commission per PaymentIntent per org.
    """

    __tablename__ = "transaction_commissions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "meeting_id"],
            ["meetings.org_id", "meetings.id"],
            ondelete="RESTRICT",
            name="fk_transaction_commissions_meeting",
        ),
        ForeignKeyConstraint(
            ["org_id", "stripe_payment_intent_id"],
            ["meetings.org_id", "meetings.stripe_payment_intent_id"],
            ondelete="RESTRICT",
            name="fk_transaction_commissions_payment_intent",
        ),
        UniqueConstraint("org_id", "stripe_payment_intent_id"),
        check_in("status", COMMISSION_STATUSES, "status"),
        check_in("plan_type_at_transaction", PLAN_TYPES, "plan_type_at_tx", nullable=True),
        check_in("tier_level_at_transaction", TIER_LEVELS, "tier_level_at_tx", nullable=True),
        *check_nonneg("gross_amount", "commission_rate", "commission_amount", "net_amount"),
        Index(None, "meeting_id"),
        Index(None, "status"),
        Index(None, "created_at"),
        table_info("org", "Platform commission recorded for each paid booking."),
    )

    workos_user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.workos_user_id", ondelete="RESTRICT"), nullable=False, index=True
    )
    meeting_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    gross_amount: Mapped[int] = mapped_column(Integer, nullable=False, comment="cents")
    commission_rate: Mapped[int] = mapped_column(Integer, nullable=False, comment="basis points")
    commission_amount: Mapped[int] = mapped_column(Integer, nullable=False, comment="cents")
    net_amount: Mapped[int] = mapped_column(Integer, nullable=False, comment="cents")
    currency: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'eur'"))
    stripe_payment_intent_id: Mapped[str] = mapped_column(Text, nullable=False)
    stripe_transfer_id: Mapped[str | None] = mapped_column(Text)
    stripe_application_fee_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'pending'"))
    processed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    plan_type_at_transaction: Mapped[str | None] = mapped_column(Text)
    tier_level_at_transaction: Mapped[str | None] = mapped_column(Text)


class AnnualPlanEligibility(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """Cached metrics deciding whether an expert qualifies for the annual plan (cron-refreshed).

    Fixed vs reference: FKs RESTRICT (were CASCADE); uniqueness per (org, user).
    """

    __tablename__ = "annual_plan_eligibility"
    __table_args__ = (
        UniqueConstraint("org_id", "workos_user_id"),
        check_in("tier_level", TIER_LEVELS, "tier_level", nullable=True),
        Index(None, "is_eligible"),
        Index(None, "last_calculated"),
        table_info("org", "Cached per-expert metrics that decide annual-plan eligibility."),
    )

    workos_user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.workos_user_id", ondelete="RESTRICT"), nullable=False
    )
    months_active: Mapped[int | None] = mapped_column(Integer, server_default="0")
    total_bookings: Mapped[int | None] = mapped_column(Integer, server_default="0")
    bookings_last_90_days: Mapped[int | None] = mapped_column(Integer, server_default="0")
    avg_monthly_revenue: Mapped[int | None] = mapped_column(
        Integer, server_default="0", comment="cents"
    )
    total_commissions_paid: Mapped[int | None] = mapped_column(
        Integer, server_default="0", comment="cents"
    )
    commissions_last_90_days: Mapped[int | None] = mapped_column(
        Integer, server_default="0", comment="cents"
    )
    current_rating: Mapped[int | None] = mapped_column(Integer, comment="rating x 100")
    is_eligible: Mapped[bool | None] = mapped_column(Boolean, server_default=false())
    eligible_since: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    tier_level: Mapped[str | None] = mapped_column(Text)
    projected_annual_commissions: Mapped[int | None] = mapped_column(Integer, comment="cents")
    projected_annual_savings: Mapped[int | None] = mapped_column(Integer, comment="cents")
    savings_percentage: Mapped[int | None] = mapped_column(Integer, comment="basis points")
    break_even_monthly_revenue: Mapped[int | None] = mapped_column(Integer, comment="cents")
    last_calculated: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )
    calculation_version: Mapped[int | None] = mapped_column(Integer, server_default="1")


class SubscriptionEvent(UuidPkMixin, OrgScopedMixin, CreatedAtMixin, Base):
    """Append-only history of subscription changes (plan changes, renewals, payments).

    Fixed vs reference: FKs RESTRICT so history is never cascade-deleted; plan FK is a
    same-org composite; ``event_type`` CHECKed; UNIQUE(org_id, stripe_event_id) de-duplicates
    webhook deliveries (rows without a Stripe event id are unconstrained).
    """

    __tablename__ = "subscription_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "subscription_plan_id"],
            ["subscription_plans.org_id", "subscription_plans.id"],
            ondelete="RESTRICT",
            name="fk_subscription_events_plan",
        ),
        UniqueConstraint("org_id", "stripe_event_id"),
        check_in("event_type", SUBSCRIPTION_EVENT_TYPES, "event_type"),
        Index(None, "subscription_plan_id"),
        Index(None, "event_type"),
        Index(None, "created_at"),
        table_info("org", "Append-only history of subscription plan changes and payments."),
    )

    workos_user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.workos_user_id", ondelete="RESTRICT"), nullable=False, index=True
    )
    subscription_plan_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    previous_plan_type: Mapped[str | None] = mapped_column(Text)
    new_plan_type: Mapped[str | None] = mapped_column(Text)
    previous_tier_level: Mapped[str | None] = mapped_column(Text)
    new_tier_level: Mapped[str | None] = mapped_column(Text)
    stripe_event_id: Mapped[str | None] = mapped_column(Text)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    reason: Mapped[str | None] = mapped_column(Text)


__all__ = [
    "AnnualPlanEligibility",
    "PaymentRef",
    "PaymentTransfer",
    "SubscriptionEvent",
    "SubscriptionPlan",
    "TransactionCommission",
    "payment_transfer_status_enum",
]
