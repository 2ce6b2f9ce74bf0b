"""Test databases on a real PostgreSQL: the embedded one by default, or CARELOG_TEST_DATABASE_URL.

One server per test session (per xdist worker), one migrated template database, and cheap
copies of it (CREATE DATABASE … TEMPLATE) for tests that need a pristine schema. Every run uses
its own role prefix and database names, so runs on the shared server never touch anything else,
and everything is dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from carelog.core.settings import Roles, Settings
from carelog.db import migrate
from carelog.db.engine import Database
from carelog.db.roles import drop_roles


@dataclass
class TestServer:
    """A PostgreSQL server we may create databases and roles on."""

    __test__ = False

    admin_url: URL
    kind: str
    prefix: str = field(default_factory=lambda: "ct" + secrets.token_hex(4))
    handle: Any = None
    tmpdir: str | None = None
    databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> TestServer:
        shared = os.environ.get("CARELOG_TEST_DATABASE_URL")
        if shared:
            return cls(make_url(shared).set(drivername="postgresql+psycopg"), kind="shared")
        tmpdir = tempfile.mkdtemp(prefix="carelog-pg-")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            handle = pgserver.get_server(tmpdir, cleanup_mode="stop")
        url = make_url(handle.get_uri()).set(drivername="postgresql+psycopg")
        return cls(url, kind="embedded", handle=handle, tmpdir=tmpdir)

    @property
    def roles(self) -> Roles:
        return Roles.from_prefix(self.prefix)

    def admin(self) -> sa.Engine:
        return sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)

    def create_database(self, template: str | None = None) -> str:
        name = f"{self.prefix}_{len(self.databases)}_{secrets.token_hex(2)}"
        engine = self.admin()
        with engine.connect() as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{suffix}')
        engine.dispose()
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        engine = self.admin()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
        if name in self.databases:
            self.databases.remove(name)

    def settings(self, database: str, **overrides: Any) -> Settings:
        base = Settings.from_env(
            {
                "CARELOG_DATABASE_URL": self.admin_url.set(database=database).render_as_string(
                    hide_password=False
                ),
                "CARELOG_ROLE_PREFIX": self.prefix,
                "CARELOG_ENV": "test",
            }
        )
        return base if not overrides else base.with_changes(**overrides)

    def database(self, name: str) -> Database:
        return Database.open(self.settings(name))

    def migrated_template(self) -> str:
        name = self.create_database()
        db = self.database(name)
        migrate.upgrade(db)
        db.close()
        return name

    def stop(self) -> None:
        for name in list(self.databases):
            self.drop_database(name)
        engine = self.admin()
        with engine.connect() as conn:
            drop_roles(conn, self.roles)
        engine.dispose()
        if self.handle is not None:
            self.handle.cleanup()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def with_pool_size(db: Database, size: int) -> Database:
    """The same database reached through engines of their own whose pools hold ``size``
    connections (dispose it at the end; ``db``'s own engines are left alone)."""
    import dataclasses

    return dataclasses.replace(
        db,
        settings=db.settings.with_changes(db_pool_size=size),
        _async_engines={},
        _sync_engines={},
    )
