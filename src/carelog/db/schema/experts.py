"""Expert onboarding and public presence: expert_setup, expert_applications, categories,
profiles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import (
    EXPERT_APPLICATION_STATUSES,
    Base,
    OrgScopedMixin,
    TimestampMixin,
    UuidPkMixin,
    check_in,
    table_info,
)


def _flag() -> Mapped[bool]:
    return mapped_column(Boolean, nullable=False, server_default=false())


class ExpertSetup(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """Onboarding checklist of an expert (profile, availability, events, identity, payments).

    Fixed vs reference: org_id NOT NULL; FKs RESTRICT instead of CASCADE; the per-user UNIQUE
    becomes UNIQUE(org_id, workos_user_id) (Citus-compatible).
    """

    __tablename__ = "expert_setup"
    __table_args__ = (
        UniqueConstraint("org_id", "workos_user_id"),
        Index(None, "setup_complete"),
        table_info("org", "Onboarding checklist tracking which setup steps an expert completed."),
    )

    workos_user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.workos_user_id", ondelete="RESTRICT"), nullable=False, index=True
    )
    profile_completed: Mapped[bool] = _flag()
    availability_completed: Mapped[bool] = _flag()
    events_completed: Mapped[bool] = _flag()
    identity_completed: Mapped[bool] = _flag()
    payment_completed: Mapped[bool] = _flag()
    google_account_completed: Mapped[bool] = _flag()
    setup_complete: Mapped[bool] = _flag()
    setup_completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class ExpertApplication(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """A user's request to become an expert, reviewed by an admin.

    Fixed vs reference: gains org_id (the applicant's org); ``status`` CHECKed; the
    reference's misnamed one-application-per-user-*ever* UNIQUE is replaced by a partial
    unique index allowing at most one *open* (pending/under_review) application per user.
    """

    __tablename__ = "expert_applications"
    __table_args__ = (
        check_in("status", EXPERT_APPLICATION_STATUSES, "status"),
        CheckConstraint("hourly_rate >= 0", name="hourly_rate_nonneg"),
        Index(
            "uq_expert_applications_one_open",
            "org_id",
            "workos_user_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'under_review')"),
        ),
        Index(None, "status"),
        table_info("org", "Applications to become an expert and their admin review outcome."),
    )

    workos_user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.workos_user_id", ondelete="RESTRICT"), nullable=False, index=True
    )
    expertise: Mapped[str] = mapped_column(Text, nullable=False)
    credentials: Mapped[str] = mapped_column(Text, nullable=False)
    experience: Mapped[str] = mapped_column(Text, nullable=False)
    motivation: Mapped[str] = mapped_column(Text, nullable=False)
    hourly_rate: Mapped[int | None] = mapped_column(Integer, comment="cents")
    website: Mapped[str | None] = mapped_column(Text)
    linkedin: Mapped[str | None] = mapped_column(Text)
    resume: Mapped[str | None] = mapped_column(Text, comment="URL")
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'pending'"))
    reviewed_by: Mapped[str | None] = mapped_column(Text, comment="admin's WorkOS user id")
    reviewed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    review_notes: Mapped[str | None] = mapped_column(Text)
    rejection_reason: Mapped[str | None] = mapped_column(Text)


class Category(UuidPkMixin, TimestampMixin, Base):
    """Global, public, hierarchical expert categories.

    Fixed vs reference: ``parent_id`` is a real self FK (SET NULL) instead of ORM-only.
    """

    __tablename__ = "categories"
    __table_args__ = (table_info("global", "Hierarchical catalogue of expert categories."),)

    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )


class Profile(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """Public expert profile (names, bios, categories, practitioner agreement acceptance).

    Fixed vs reference: org_id NOT NULL; UNIQUE(org_id, workos_user_id); ``social_links`` is
    JSONB; the agreement IP is ``inet``; category FKs SET NULL so deleting a category does
    not block on, or delete, profiles.
    """

    __tablename__ = "profiles"
    __table_args__ = (
        UniqueConstraint("org_id", "workos_user_id"),
        table_info("org", "Public profile of an expert shown on listings and booking pages."),
    )

    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    profile_picture: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str] = mapped_column(Text, nullable=False)
    last_name: Mapped[str] = mapped_column(Text, nullable=False)
    headline: Mapped[str | None] = mapped_column(Text)
    short_bio: Mapped[str | None] = mapped_column(Text)
    long_bio: Mapped[str | None] = mapped_column(Text)
    primary_category_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    secondary_category_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    social_links: Mapped[list[dict[str, str]] | None] = mapped_column(
        JSONB, comment="array of {name: platform, url}"
    )
    is_verified: Mapped[bool] = _flag()
    is_top_expert: Mapped[bool] = _flag()
    published: Mapped[bool] = _flag()
    practitioner_agreement_accepted_at: Mapped[datetime | None] = mapped_column(
        TIMESTAMP(timezone=True)
    )
    practitioner_agreement_version: Mapped[str | None] = mapped_column(Text)
    practitioner_agreement_ip_address: Mapped[str | None] = mapped_column(INET)
    practitioner_agreement_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    order: Mapped[int] = mapped_column("order", Integer, nullable=False, server_default="0")


__all__ = ["Category", "ExpertApplication", "ExpertSetup", "Profile"]
