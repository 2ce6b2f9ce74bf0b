"""The membership look-up behind every tenant policy, planned once per session.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from carelog.db.migrations.env_support import migration_roles
from carelog.db.sqlfiles import render_sql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(render_sql("0011_membership_plan.sql", migration_roles()))


def downgrade() -> None:
    op.execute(render_sql("0011_membership_plan_down.sql", migration_roles()))
