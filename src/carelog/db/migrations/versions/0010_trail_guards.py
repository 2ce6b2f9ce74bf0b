"""The trail under attack: the database dates events, decides retention, records purges.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from carelog.db.migrations.env_support import migration_roles
from carelog.db.sqlfiles import render_sql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = "status IN ('started', 'completed', 'failed')"
_NEW_STATUSES = "status IN ('started', 'completed', 'failed', 'aborted')"


def upgrade() -> None:
    op.create_table(
        "audit_action_categories",
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column(
            "registered_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("action", name=op.f("pk_audit_action_categories")),
        info={"scope": "global", "summary": "Retention category of each audited action."},
    )
    op.create_table(
        "audit_purges",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("purged_by", sa.Text(), nullable=False, comment="the database role"),
        sa.Column("removed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("removed_count", sa.BigInteger(), nullable=False),
        sa.Column("oldest", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("newest", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("partition_name", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('events', 'partition', 'held')", name=op.f("ck_audit_purges_kind")
        ),
        sa.CheckConstraint("removed_count >= 0", name=op.f("ck_audit_purges_removed_count_nonneg")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_audit_purges_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_purges")),
        info={
            "scope": "org",
            "summary": "Every retention purge: who ran it, what it removed, per action.",
        },
    )
    op.create_index(op.f("ix_audit_purges_org_id"), "audit_purges", ["org_id"], unique=False)
    op.execute(
        "ALTER TABLE audit_log_exports DROP CONSTRAINT ck_audit_log_exports_status, "
        f"ADD CONSTRAINT ck_audit_log_exports_status CHECK ({_NEW_STATUSES})"
    )
    op.execute(render_sql("0010_trail_guards.sql", migration_roles()))


def downgrade() -> None:
    roles = migration_roles()
    op.execute("DROP POLICY audit_logs_runtime_bounds ON audit_logs")
    op.execute(f'GRANT INSERT ON audit_logs TO "{roles.app}", "{roles.system}", "{roles.writer}"')
    for table in ("organizations", "meetings", "events", "records"):
        op.execute(f"DROP POLICY {table}_owner_lookup ON {table}")
    for fn in (
        "app.resource_owner_org(text, uuid)",
        "app.audit_drop_expired_partitions()",
        "app.audit_purge_expired()",
        "app.audit_purge_plan()",
        "app.audit_register_actions(text[], text[])",
        "app.audit_event_expired(uuid, text, timestamptz, text)",
        "app.audit_retention_days(uuid, text)",
    ):
        op.execute(f"DROP FUNCTION {fn}")
    for policy, table in (
        ("audit_retention_policies_owner_select", "audit_retention_policies"),
        ("audit_retention_policies_maintenance_select", "audit_retention_policies"),
        ("audit_legal_holds_maintenance_select", "audit_legal_holds"),
        ("audit_logs_maintenance_insert", "audit_logs"),
        ("audit_logs_maintenance_select", "audit_logs"),
    ):
        op.execute(f"DROP POLICY {policy} ON {table}")
    op.execute(
        f"REVOKE ALL ON audit_logs, audit_retention_policies, audit_legal_holds "
        f'FROM "{roles.maintenance}"'
    )
    op.execute(render_sql("0002_purge_functions.sql", roles))
    op.execute(render_sql("0003_purge_functions.sql", roles))
    op.execute(
        "ALTER TABLE audit_log_exports DROP CONSTRAINT ck_audit_log_exports_status, "
        f"ADD CONSTRAINT ck_audit_log_exports_status CHECK ({_OLD_STATUSES})"
    )
    op.drop_index(op.f("ix_audit_purges_org_id"), table_name="audit_purges")
    op.drop_table("audit_purges")
    op.drop_table("audit_action_categories")
    op.execute("DROP FUNCTION app.refuse_row_change()")
