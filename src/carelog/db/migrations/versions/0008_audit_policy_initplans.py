"""audit_logs policies evaluated once per statement, not once per partition.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

from carelog.db.migrations.env_support import migration_roles
from carelog.db.sqlfiles import render_sql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(render_sql("0008_audit_policies.sql", migration_roles()))


def downgrade() -> None:
    op.execute(render_sql("0008_audit_policies_down.sql", migration_roles()))
