"""Payment references: the organization of every Stripe id carelog records at payment time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from carelog.db.migrations.env_support import migration_roles
from carelog.db.sqlfiles import render_sql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_refs",
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column(
            "payment_intent_id",
            sa.Text(),
            nullable=True,
            comment="for a charge: the payment intent it belongs to",
        ),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('payment_intent', 'checkout_session', 'charge', 'account', 'event')",
            name=op.f("ck_payment_refs_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_payment_refs_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("ref", "org_id", name=op.f("pk_payment_refs")),
        info={
            "scope": "org",
            "summary": "Stripe object ids (and event ids) -> the organization that owns them.",
        },
    )
    op.create_index(op.f("ix_payment_refs_org_id"), "payment_refs", ["org_id"], unique=False)
    op.execute(render_sql("0007_payment_refs.sql", migration_roles()))


def downgrade() -> None:
    for table in ("meetings", "events", "payment_transfers"):
        op.execute(f"DROP TRIGGER {table}_payment_refs ON {table}")
    op.execute("DROP FUNCTION app.record_payment_refs()")
    op.execute("DROP FUNCTION app.payment_ref_orgs(text[])")
    op.drop_index(op.f("ix_payment_refs_org_id"), table_name="payment_refs")
    op.drop_table("payment_refs")
