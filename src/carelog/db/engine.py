"""Connections: an admin URL for migrations, two least-privileged runtime roles for the rest.

The runtime never connects as a superuser or as the owner of the tables: a request runs as
``<prefix>_app`` (row-level security by membership), a webhook or job as ``<prefix>_system``
(row-level security by the explicit organization). Two roles, so a bug in one path cannot borrow
the other's policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from carelog.core.errors import CarelogError, ConfigurationError, DatabaseUnavailableError
from carelog.core.settings import Settings
from carelog.db.embedded import start_embedded, stop_embedded

RuntimeKind = Literal["app", "system", "writer", "maintenance"]
UrlKind = Literal["admin", "app", "system", "writer", "maintenance"]


def psycopg_url(
    raw: str,
    *,
    variable: str,
    error: type[CarelogError] = ConfigurationError,
    hint: str = "carelog needs PostgreSQL 15 or newer",
) -> URL:
    """A PostgreSQL URL for the psycopg 3 driver, or ``error`` naming where it came from."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise error(
            "is not a database URL",
            field=variable,
            hint="expected postgresql://user:password@host:port/dbname",
        ) from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise error(f"unsupported database {url.get_backend_name()!r}", field=variable, hint=hint)
    return url.set(drivername="postgresql+psycopg")


@dataclass
class Database:
    """Where carelog's data lives, and the engines that reach it."""

    settings: Settings
    admin_url: URL
    app_url: URL
    system_url: URL
    writer_url: URL
    maintenance_url: URL
    _server: Any = None
    _async_engines: dict[str, AsyncEngine] = field(default_factory=dict)
    _sync_engines: dict[str, sa.Engine] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings) -> Database:
        """Resolve URLs, starting the embedded server and creating its database when needed."""
        server = None
        if settings.database_url is None:
            server, raw = start_embedded(settings.data_dir)
            admin = psycopg_url(raw, variable="embedded server")
            _ensure_database(admin, settings.db_name)
            admin = admin.set(database=settings.db_name)
        else:
            admin = psycopg_url(settings.database_url, variable="CARELOG_DATABASE_URL")

        def runtime(explicit: str | None, variable: str, role: str) -> URL:
            if explicit:
                return psycopg_url(explicit, variable=variable)
            return admin.set(username=role, password=None)

        roles = settings.roles
        return cls(
            settings=settings,
            admin_url=admin,
            app_url=runtime(settings.app_database_url, "CARELOG_APP_DATABASE_URL", roles.app),
            system_url=runtime(
                settings.system_database_url, "CARELOG_SYSTEM_DATABASE_URL", roles.system
            ),
            writer_url=runtime(
                settings.writer_database_url, "CARELOG_AUDIT_WRITER_DATABASE_URL", roles.writer
            ),
            maintenance_url=runtime(
                settings.maintenance_database_url,
                "CARELOG_MAINTENANCE_DATABASE_URL",
                roles.maintenance,
            ),
            _server=server,
        )

    def url_for(self, kind: UrlKind) -> URL:
        return {
            "admin": self.admin_url,
            "app": self.app_url,
            "system": self.system_url,
            "writer": self.writer_url,
            "maintenance": self.maintenance_url,
        }[kind]

    def sync_engine(self, kind: UrlKind = "admin") -> sa.Engine:
        if kind not in self._sync_engines:
            self._sync_engines[kind] = sa.create_engine(
                self.url_for(kind), pool_pre_ping=True, pool_size=5, max_overflow=5
            )
        return self._sync_engines[kind]

    def async_engine(self, kind: RuntimeKind = "app") -> AsyncEngine:
        if kind not in self._async_engines:
            # No pre-ping: it was one more round trip ahead of every unit of work. A connection
            # that died meanwhile fails its statement instead (the unit rolls back, fail
            # closed) and SQLAlchemy then invalidates the whole pool, so after a database
            # restart only the requests already holding a dead connection see an error.
            # No overflow: under more concurrent units than the pool holds, every overflow
            # connection was opened for one unit and closed at its end (a new server process,
            # its catalog caches cold: the first plan of an audit page took 7 ms against 1 ms
            # warm). Under `carelog bench http`'s load half of the app role's connections were
            # new from one 5 s sample to the next; without overflow the owner's audit page went
            # from 0.19x to 0.24x of the baseline, the PHI read from 0.25x to 0.29x.
            self._async_engines[kind] = create_async_engine(
                self.url_for(kind),
                pool_pre_ping=False,
                pool_size=self.settings.db_pool_size,
                max_overflow=0,
            )
        return self._async_engines[kind]

    async def dispose(self) -> None:
        for engine in self._async_engines.values():
            await engine.dispose()
        self._async_engines.clear()
        self.dispose_sync()

    def dispose_sync(self) -> None:
        for sync in self._sync_engines.values():
            sync.dispose()
        self._sync_engines.clear()

    def close(self) -> None:
        """Release engines and, for the embedded server, our handle on it."""
        self.dispose_sync()
        if self._server is not None:
            stop_embedded(self._server)
            self._server = None


def _ensure_database(admin: URL, name: str) -> None:
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("select 1 from pg_database where datname = :n"), {"n": name}
            ).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"cannot reach the embedded PostgreSQL: {exc.orig}",
            hint="delete a stale CARELOG_DATA_DIR/pgdata/postmaster.pid if no server is running",
        ) from exc
    finally:
        engine.dispose()
