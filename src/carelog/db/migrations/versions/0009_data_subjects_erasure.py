"""Data subjects, per-subject audit data keys, erasures, the disclosures register.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from carelog.db.migrations.env_support import migration_roles
from carelog.db.sqlfiles import render_sql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _common(table: str) -> list[Any]:
    return [
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f(f"fk_{table}_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _created_at() -> Any:
    return sa.Column(
        "created_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "data_subjects",
        *_common("data_subjects"),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column(
            "email_token",
            sa.Text(),
            nullable=True,
            comment="keyed hash of the normalised e-mail; NULL once erased",
        ),
        sa.Column("workos_user_id", sa.Text(), nullable=True),
        sa.Column("erased_at", sa.TIMESTAMP(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint("kind IN ('workos', 'carelog')", name=op.f("ck_data_subjects_kind")),
        sa.UniqueConstraint(
            "org_id", "subject_id", name=op.f("uq_data_subjects_org_id_subject_id")
        ),
        sa.UniqueConstraint(
            "org_id", "email_token", name=op.f("uq_data_subjects_org_id_email_token")
        ),
        info={
            "scope": "org",
            "summary": "Data subjects (patients) by opaque id; e-mail only as a keyed hash.",
        },
    )
    op.create_index(op.f("ix_data_subjects_org_id"), "data_subjects", ["org_id"])
    op.create_table(
        "audit_subject_keys",
        *_common("audit_subject_keys"),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False, comment="public id of the data key"),
        sa.Column("kek_id", sa.Text(), nullable=False, comment="key that wraps it"),
        sa.Column("wrapped_key", sa.Text(), nullable=True, comment="base64; NULL once destroyed"),
        sa.Column("rotated_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("destroyed_at", sa.TIMESTAMP(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "(destroyed_at IS NULL) = (wrapped_key IS NOT NULL)",
            name=op.f("ck_audit_subject_keys_destroyed_xor_key"),
        ),
        sa.UniqueConstraint(
            "org_id", "subject_id", name=op.f("uq_audit_subject_keys_org_id_subject_id")
        ),
        info={
            "scope": "org",
            "summary": "Per-subject audit data keys (wrapped); destroying one erases values.",
        },
    )
    op.create_index(op.f("ix_audit_subject_keys_org_id"), "audit_subject_keys", ["org_id"])
    op.create_table(
        "subject_erasures",
        *_common("subject_erasures"),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="requested", nullable=False),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("completed_at", sa.TIMESTAMP(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "status IN ('requested', 'completed', 'refused')",
            name=op.f("ck_subject_erasures_status"),
        ),
        info={
            "scope": "org",
            "summary": "Erasure requests and their outcome (what was erased or why refused).",
        },
    )
    op.create_index(op.f("ix_subject_erasures_org_id"), "subject_erasures", ["org_id"])
    op.create_index("ix_subject_erasures_org_subject", "subject_erasures", ["org_id", "subject_id"])
    op.create_table(
        "subject_disclosures",
        *_common("subject_disclosures"),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("disclosed_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        _created_at(),
        info={
            "scope": "org",
            "summary": "Disclosures of a subject's data outside the platform (append-only).",
        },
    )
    op.create_index(op.f("ix_subject_disclosures_org_id"), "subject_disclosures", ["org_id"])
    op.create_index(
        "ix_subject_disclosures_org_subject", "subject_disclosures", ["org_id", "subject_id"]
    )
    op.add_column(
        "meetings",
        sa.Column(
            "data_subject_id",
            sa.Text(),
            nullable=True,
            comment="the patient as a data subject of this org (WorkOS user or subj_ id)",
        ),
    )
    op.create_index("ix_meetings_org_subject", "meetings", ["org_id", "data_subject_id"])
    op.add_column(
        "records",
        sa.Column(
            "destroy_after",
            sa.TIMESTAMP(timezone=True),
            nullable=True,
            comment="set when the patient was erased: kept (encrypted) until retention ends",
        ),
    )
    # Bookings made before this revision: a patient with a WorkOS user is that user.
    op.execute(
        "UPDATE meetings SET data_subject_id = guest_workos_user_id"
        " WHERE guest_workos_user_id IS NOT NULL"
    )
    op.execute(render_sql("0009_data_subjects.sql", migration_roles()))


def downgrade() -> None:
    op.execute("DROP FUNCTION app.subject_disclosures_append_only() CASCADE")
    op.drop_column("records", "destroy_after")
    op.drop_index("ix_meetings_org_subject", table_name="meetings")
    op.drop_column("meetings", "data_subject_id")
    for table in ("subject_disclosures", "subject_erasures", "audit_subject_keys", "data_subjects"):
        op.drop_table(table)
