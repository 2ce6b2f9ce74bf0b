"""Creation of the database roles, done by an administrator before migrations run.

- ``<prefix>_owner`` owns every object (NOLOGIN: nobody works as it day to day; the migration
  connection switches to it with SET ROLE).
- ``<prefix>_app``, ``<prefix>_system`` and ``<prefix>_audit_writer`` log in for the runtime;
  they own nothing, and have neither BYPASSRLS nor membership in the owner role.
"""

from __future__ import annotations

import sqlalchemy as sa

from carelog.core.errors import ConfigurationError
from carelog.core.settings import Roles
from carelog.db.sqlfiles import quote_ident


def ensure_roles(conn: sa.Connection, roles: Roles) -> None:
    """Create missing roles and make sure the runtime ones are unprivileged (idempotent)."""
    me = conn.execute(
        sa.text("select rolsuper, rolcreaterole from pg_roles where rolname = current_user")
    ).one()
    existing = set(
        conn.execute(
            sa.text("select rolname from pg_roles where rolname = any(:names)"),
            {"names": [roles.owner, *roles.runtime]},
        ).scalars()
    )
    missing = {roles.owner, *roles.runtime} - existing
    if missing and not (me.rolsuper or me.rolcreaterole):
        raise ConfigurationError(
            f"database roles {', '.join(sorted(missing))} do not exist and the connecting user "
            "may not create them",
            hint="run `carelog db upgrade` once with a superuser CARELOG_DATABASE_URL, or create "
            "the roles as documented in docs/architecture.md",
        )
    db = conn.execute(sa.text("select current_database()")).scalar_one()
    if roles.owner not in existing:
        conn.exec_driver_sql(f"CREATE ROLE {quote_ident(roles.owner)} NOLOGIN")
    for runtime in roles.runtime:
        if runtime not in existing:
            conn.exec_driver_sql(f"CREATE ROLE {quote_ident(runtime)} LOGIN")
        if me.rolsuper:
            conn.exec_driver_sql(
                f"ALTER ROLE {quote_ident(runtime)} NOSUPERUSER NOBYPASSRLS NOCREATEDB "
                "NOCREATEROLE NOINHERIT"
            )
        conn.exec_driver_sql(
            f"GRANT CONNECT ON DATABASE {quote_ident(db)} TO {quote_ident(runtime)}"
        )
    if not me.rolsuper:
        conn.exec_driver_sql(f"GRANT {quote_ident(roles.owner)} TO CURRENT_USER")
    conn.exec_driver_sql(
        f"GRANT CONNECT, CREATE ON DATABASE {quote_ident(db)} TO {quote_ident(roles.owner)}"
    )
    conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {quote_ident(roles.owner)}")


def drop_roles(conn: sa.Connection, roles: Roles) -> None:
    """Remove the roles (tests on a shared server clean up after themselves)."""
    for name in (*roles.runtime, roles.owner):
        exists = conn.execute(
            sa.text("select 1 from pg_roles where rolname = :n"), {"n": name}
        ).scalar()
        if exists:
            conn.exec_driver_sql(f"DROP OWNED BY {quote_ident(name)} CASCADE")
            conn.exec_driver_sql(f"DROP ROLE {quote_ident(name)}")
