"""Tenancy and identity: organizations, users, roles, user_org_memberships."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    TIMESTAMP,
    Boolean,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from carelog.db.schema.base import (
    APP_ROLES,
    ENCRYPTION_METHODS_GOOGLE,
    LANGUAGES,
    MEMBERSHIP_ROLES,
    MEMBERSHIP_STATUSES,
    ORGANIZATION_TYPES,
    THEMES,
    Base,
    OrgScopedMixin,
    TimestampMixin,
    UuidPkMixin,
    check_in,
    table_info,
)


class Organization(UuidPkMixin, TimestampMixin, Base):
    """The tenant (one personal organization per user today).

    Fixed vs the legacy schema: ``type`` is CHECKed; the duplicate indexes it kept next to
    the UNIQUE constraints on ``workos_org_id`` and ``slug`` are gone.
    """

    __tablename__ = "organizations"
    __table_args__ = (
        check_in("type", ORGANIZATION_TYPES, "type"),
        table_info("global", "Tenant organizations (WorkOS orgs); every tenant row points here."),
    )

    workos_org_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    slug: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False)


def _bool_false() -> Mapped[bool]:
    return mapped_column(Boolean, nullable=False, server_default=false())


class User(UuidPkMixin, TimestampMixin, Base):
    """Minimal local mirror of a WorkOS user (identity is ``workos_user_id``).

    Fixed vs reference: ``role``/``theme``/``language``/token encryption method are CHECKed,
    Stripe flags are NOT NULL (default false); redundant indexes on UNIQUE columns dropped.
    """

    __tablename__ = "users"
    __table_args__ = (
        check_in("role", APP_ROLES, "role"),
        check_in("theme", THEMES, "theme"),
        check_in("language", LANGUAGES, "language"),
        check_in(
            "google_token_encryption_method",
            ENCRYPTION_METHODS_GOOGLE,
            "google_token_enc_method",
            nullable=True,
        ),
        Index(None, "email"),
        table_info("global", "Local mirror of WorkOS users: profile, Stripe and Google settings."),
    )

    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    email: Mapped[str] = mapped_column(Text, nullable=False)
    username: Mapped[str | None] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'user'"))
    stripe_customer_id: Mapped[str | None] = mapped_column(Text, unique=True)
    stripe_connect_account_id: Mapped[str | None] = mapped_column(Text, unique=True)
    stripe_connect_details_submitted: Mapped[bool] = _bool_false()
    stripe_connect_charges_enabled: Mapped[bool] = _bool_false()
    stripe_connect_payouts_enabled: Mapped[bool] = _bool_false()
    stripe_connect_onboarding_complete: Mapped[bool] = _bool_false()
    stripe_bank_account_last4: Mapped[str | None] = mapped_column(Text)
    stripe_bank_name: Mapped[str | None] = mapped_column(Text)
    stripe_identity_verification_id: Mapped[str | None] = mapped_column(Text)
    stripe_identity_verified: Mapped[bool] = _bool_false()
    stripe_identity_verification_status: Mapped[str | None] = mapped_column(Text)
    stripe_identity_verification_last_checked: Mapped[datetime | None] = mapped_column(
        TIMESTAMP(timezone=True)
    )
    country: Mapped[str | None] = mapped_column(Text, server_default=text("'PT'"))
    image_url: Mapped[str | None] = mapped_column(Text)
    welcome_email_sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    onboarding_completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    vault_google_access_token: Mapped[str | None] = mapped_column(Text)
    vault_google_refresh_token: Mapped[str | None] = mapped_column(Text)
    google_token_encryption_method: Mapped[str | None] = mapped_column(
        Text, server_default=text("'vault'")
    )
    google_token_expiry: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    google_scopes: Mapped[str | None] = mapped_column(Text)
    google_calendar_connected: Mapped[bool] = _bool_false()
    google_calendar_connected_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    theme: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'light'"))
    language: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'en'"))


class Role(UuidPkMixin, TimestampMixin, Base):
    """Extra application-role rows per user (several allowed, but each role once).

    Fixed vs reference: ``role`` is CHECKed against the application-role vocabulary. The
    UNIQUE(workos_user_id, role) index also serves lookups by user, so no separate index.
    """

    __tablename__ = "roles"
    __table_args__ = (
        UniqueConstraint("workos_user_id", "role"),
        check_in("role", APP_ROLES, "role"),
        table_info("global", "Additional application roles granted to a WorkOS user."),
    )

    workos_user_id: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)


class UserOrgMembership(UuidPkMixin, OrgScopedMixin, TimestampMixin, Base):
    """User ↔ organization link with a membership role; the basis of every org-scoped check.

    Fixed vs reference: FK to users (RESTRICT) instead of none, org FK RESTRICT instead of
    CASCADE, ``role``/``status`` CHECKed, ``status`` NOT NULL, unique key leads with org_id.
    """

    __tablename__ = "user_org_memberships"
    __table_args__ = (
        UniqueConstraint("org_id", "workos_user_id"),
        check_in("role", MEMBERSHIP_ROLES, "role"),
        check_in("status", MEMBERSHIP_STATUSES, "status"),
        table_info("org", "Membership of a WorkOS user in an organization, with its role."),
    )

    workos_user_id: Mapped[str] = mapped_column(
        Text,
        ForeignKey("users.workos_user_id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    )
    role: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'active'"))
    joined_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    )


__all__ = ["Organization", "Role", "User", "UserOrgMembership"]
