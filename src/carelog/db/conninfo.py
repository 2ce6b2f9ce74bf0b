"""libpq connection strings for the connections carelog opens without SQLAlchemy.

The audit writer and the leader lock talk to psycopg directly. Rendering the SQLAlchemy URL
back to a URI loses multi-host URLs (``?host=a:5432&host=b:5432&target_session_attrs=
read-write``, the form a primary/standby pair is configured with): libpq would keep only the last
``host``. The psycopg dialect already turns such a URL into ``host=a,b port=5432,5432``; we use
exactly that, so both kinds of connection fail over to the same server.
"""

from __future__ import annotations

from psycopg.conninfo import make_conninfo
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import URL


def libpq_conninfo(url: URL) -> str:
    dialect = PGDialect_psycopg()  # type: ignore[no-untyped-call]
    _, kwargs = dialect.create_connect_args(  # type: ignore[no-untyped-call]
        url.set(drivername="postgresql+psycopg")
    )
    return make_conninfo(**{key: str(value) for key, value in kwargs.items()})
