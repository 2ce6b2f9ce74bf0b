"""Alembic environment: runs on the connection carelog.db.migrate hands over, as the owner role."""

from __future__ import annotations

from alembic import context

from carelog.db.migrations.env_support import compare_options
from carelog.db.schema import Base

config = context.config


def run_migrations_online() -> None:
    context.configure(
        connection=config.attributes["connection"],
        target_metadata=Base.metadata,
        transaction_per_migration=True,
        **compare_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("carelog migrations run online only: use `carelog db upgrade`")
run_migrations_online()
