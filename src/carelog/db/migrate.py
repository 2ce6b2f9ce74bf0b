"""Schema migrations: the operations behind `carelog db upgrade|downgrade|current|check`.

Migrations connect with the admin URL, create the roles if needed, then ``SET ROLE`` to the
owner so every object is owned by ``<prefix>_owner`` and never by a login role. The role names
travel to the migration scripts through ``config.attributes`` so the SQL files can grant to
them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from carelog.core.errors import DatabaseUnavailableError
from carelog.db.engine import Database
from carelog.db.roles import ensure_roles
from carelog.db.sqlfiles import quote_ident


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("carelog.db") / "migrations"))
    return cfg


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


@contextmanager
def owner_connection(db: Database) -> Iterator[sa.Connection]:
    engine = sa.create_engine(db.admin_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            with conn.begin():
                ensure_roles(conn, db.settings.roles)
            conn.exec_driver_sql(f"SET ROLE {quote_ident(db.settings.roles.owner)}")
            conn.commit()
            yield conn
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {db.admin_url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).strip().splitlines()[0]}",
            hint="check CARELOG_DATABASE_URL and that the server is running",
        ) from exc
    finally:
        engine.dispose()


def _run(db: Database, fn: Any, *args: Any) -> None:
    cfg = alembic_config()
    with owner_connection(db) as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["roles"] = db.settings.roles
        fn(cfg, *args)
        conn.commit()


def upgrade(db: Database, revision: str = "head") -> None:
    _run(db, command.upgrade, revision)


def downgrade(db: Database, revision: str) -> None:
    _run(db, command.downgrade, revision)


def current(db: Database) -> str | None:
    with owner_connection(db) as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(heads) if heads else None


def drift(db: Database) -> list[Any]:
    """Differences between the models and the migrated database (empty means no drift)."""
    from carelog.db.migrations.env_support import compare_options
    from carelog.db.schema import Base

    with owner_connection(db) as conn:
        mc = MigrationContext.configure(conn, opts=compare_options())
        return list(compare_metadata(mc, Base.metadata))
