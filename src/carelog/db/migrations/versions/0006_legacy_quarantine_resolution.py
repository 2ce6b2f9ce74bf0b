"""Legacy import: quarantine rows resolved by a later run are marked resolved, not left open.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "legacy_audit_quarantine",
        sa.Column(
            "resolved_at",
            sa.TIMESTAMP(timezone=True),
            nullable=True,
            comment="set when a later run imported the row",
        ),
    )
    op.add_column("legacy_audit_quarantine", sa.Column("resolved_run_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_legacy_audit_quarantine_resolved_run_id_legacy_import_runs"),
        "legacy_audit_quarantine",
        "legacy_import_runs",
        ["resolved_run_id"],
        ["id"],
        ondelete="RESTRICT",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_legacy_audit_quarantine_resolved_run_id_legacy_import_runs"),
        "legacy_audit_quarantine",
        type_="foreignkey",
    )
    op.drop_column("legacy_audit_quarantine", "resolved_run_id")
    op.drop_column("legacy_audit_quarantine", "resolved_at")
