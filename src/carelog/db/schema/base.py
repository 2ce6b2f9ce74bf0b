"""Declarative base, naming convention, shared mixins and helpers for the canonical schema.

Every table in :mod:`carelog.db.schema` derives from :class:`Base`. Compared with the legacy
platform's schema (Drizzle, naive ``timestamp``, text "enums" enforced only in TypeScript) we
use ``timestamptz`` everywhere, CHECK constraints for every vocabulary, ``NOT NULL`` tenant keys
and deterministic constraint names (so Alembic diffs and the docs generator are stable).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    TIMESTAMP,
    CheckConstraint,
    ForeignKey,
    MetaData,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Scope = Literal["org", "global"]


class Base(DeclarativeBase):
    """Declarative base of the canonical (WorkOS-era) schema: 22 tables, one MetaData."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: TIMESTAMP(timezone=True),
        dict[str, Any]: JSONB,
    }


# --------------------------------------------------------------------------- real PG enums


class Day(enum.StrEnum):
    """Values of the PG enum ``day`` (Monday first, lowercase, as in the reference)."""

    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


class PaymentTransferStatus(enum.StrEnum):
    """Values of the PG enum ``payment_transfer_status_enum`` (uppercase, as in the reference)."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    READY = "READY"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    DISPUTED = "DISPUTED"
    PAID_OUT = "PAID_OUT"


def enum_values(enum_cls: type[enum.Enum]) -> list[str]:
    """``values_callable`` for ``sqlalchemy.Enum``: store the member *values*, not names."""
    return [str(member.value) for member in enum_cls]


# --------------------------------------------------------------------------- vocabularies

ORGANIZATION_TYPES = ("patient_personal", "expert_individual", "clinic", "educational_institution")
APP_ROLES = ("user", "expert_top", "expert_community", "expert_lecturer", "admin", "superadmin")
MEMBERSHIP_ROLES = ("owner", "admin", "member", "billing_admin")
MEMBERSHIP_STATUSES = ("active", "invited", "suspended")
THEMES = ("light", "dark", "system")
LANGUAGES = ("en", "es", "pt", "br")
ENCRYPTION_METHODS_GOOGLE = ("vault",)
EXPERT_APPLICATION_STATUSES = ("pending", "under_review", "approved", "rejected")
MEETING_STATUSES = ("booked", "cancelled", "completed", "no_show")
MEETING_PAYMENT_STATUSES = ("pending", "processing", "succeeded", "failed", "refunded")
MEETING_TRANSFER_STATUSES = ("pending", "processing", "succeeded", "failed")
RECORD_ENCRYPTION_METHODS = ("vault", "aes256gcm")
PLAN_TYPES = ("commission", "monthly", "annual")
TIER_LEVELS = ("community", "top")
BILLING_INTERVALS = ("month", "year")
SUBSCRIPTION_STATUSES = ("active", "canceled", "past_due", "unpaid", "trialing")
COMMISSION_STATUSES = ("pending", "processed", "refunded", "disputed")
SUBSCRIPTION_EVENT_TYPES = (
    "plan_created",
    "plan_upgraded",
    "plan_downgraded",
    "subscription_started",
    "subscription_renewed",
    "subscription_canceled",
    "subscription_expired",
    "payment_succeeded",
    "payment_failed",
    "eligibility_achieved",
    "eligibility_lost",
)
AUDIT_ACTOR_TYPES = ("user", "system")
AUDIT_OUTCOMES = ("success", "failure", "denied")
AUDIT_SOURCES = ("live", "spool", "imported")


# --------------------------------------------------------------------------- helpers


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_in(
    column: str, values: Iterable[str], name: str, *, nullable: bool = False
) -> CheckConstraint:
    """CHECK ``column IN (...)``; ``name`` is the short suffix (ck_<table>_<name>)."""
    allowed = ", ".join(_sql_literal(v) for v in values)
    sql = f"{column} IN ({allowed})"
    if nullable:
        sql = f"{column} IS NULL OR {sql}"
    return CheckConstraint(sql, name=name)


def check_nonneg(*columns: str) -> tuple[CheckConstraint, ...]:
    """One ``CHECK (col >= 0)`` per column, named ``<col>_nonneg`` (NULL passes)."""
    return tuple(CheckConstraint(f"{c} >= 0", name=f"{c}_nonneg") for c in columns)


def table_info(scope: Scope, summary: str) -> dict[str, Any]:
    """``__table_args__`` entry read by the docs generator and the security test suite."""
    return {"info": {"scope": scope, "summary": summary}}


# --------------------------------------------------------------------------- mixins


class UuidPkMixin:
    """Random UUID primary key generated by the database."""

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, server_default=text("gen_random_uuid()"), sort_order=-100
    )


class OrgScopedMixin:
    """Tenant key: ``org_id uuid NOT NULL`` → organizations (RESTRICT), indexed.

    The legacy schema left most ``org_id`` columns nullable ("TODO make NOT NULL") and cascaded
    deletes from organizations into financial and clinical history; both are fixed here.
    """

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("organizations.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
        sort_order=-90,
    )


class CreatedAtMixin:
    """``created_at timestamptz NOT NULL DEFAULT now()``."""

    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now(), sort_order=100
    )


class TimestampMixin(CreatedAtMixin):
    """``created_at`` + ``updated_at`` (the latter maintained by a DB trigger, not the ORM)."""

    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now(), sort_order=101
    )
