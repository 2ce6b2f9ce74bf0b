"""Reading the legacy separate audit database, with clear errors.

The table is described by :class:`carelog.legacy.schema.LegacyAuditLog`; the shape
check compares the live table with it column by column (extra columns are harmless), so a wrong
``--source`` fails before anything is read. Rows are read in ``id`` order with keyset
pagination (``WHERE id > last ORDER BY id LIMIT n``): a batch is one short statement, and a
rerun reads the same rows in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from carelog.db.engine import psycopg_url
from carelog.legacy.audit_import.errors import (
    LegacySourceShapeError,
    LegacySourceUnavailableError,
)
from carelog.legacy.schema import LegacyAuditLog, LegacyUser

AUDIT_TABLE: sa.Table = LegacyAuditLog.__table__  # type: ignore[assignment]
USERS_TABLE: sa.Table = LegacyUser.__table__  # type: ignore[assignment]

_TEXT = frozenset({"text", "character varying", "character"})
#: Accepted PostgreSQL types per legacy column (``information_schema.columns.data_type``).
#: Wider-but-compatible types are accepted (bigint ids, text instead of varchar, inet IPs, json).
EXPECTED_TYPES: dict[str, frozenset[str]] = {
    "id": frozenset({"integer", "bigint", "smallint"}),
    "clerkUserId": _TEXT,
    "action": _TEXT,
    "resource_type": _TEXT,
    "resource_id": _TEXT,
    "old_values": frozenset({"jsonb", "json"}),
    "new_values": frozenset({"jsonb", "json"}),
    "ip_address": _TEXT | {"inet"},
    "user_agent": _TEXT,
    "created_at": frozenset({"timestamp without time zone", "timestamp with time zone"}),
}


@dataclass(frozen=True)
class LegacyRow:
    """One row of the legacy ``audit_logs``, as read."""

    id: int
    clerk_user_id: str
    action: str
    resource_type: str
    resource_id: str | None
    old_values: Any
    new_values: Any
    ip_address: str | None
    user_agent: str | None
    created_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The row as plain JSON (for the quarantine table)."""
        return {
            "id": self.id,
            "clerkUserId": self.clerk_user_id,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "old_values": self.old_values,
            "new_values": self.new_values,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
        }


def parse_source_url(raw: str, *, option: str = "--source") -> URL:
    url = psycopg_url(
        raw,
        variable=option,
        error=LegacySourceShapeError,
        hint="the legacy audit database is PostgreSQL",
    )
    if not url.database:
        raise LegacySourceShapeError("names no database", field=option)
    return url


def fingerprint_of(url: URL) -> str:
    """A stable name for a source: ``host:port/dbname`` (no credentials).

    It keys the imported event ids and the quarantine, so it must not change between reruns of
    the same source; pass ``--source-name`` when the same database is reached by another address.
    """
    host = (url.host or "localhost").lower()
    return f"{host}:{url.port or 5432}/{url.database}"


def describe(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=True)


_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")


def check_source_name(name: str) -> str:
    if not _SOURCE_NAME.match(name):
        raise LegacySourceShapeError(
            "must be 1-200 characters: letters, digits and . _ : / @ -", field="--source-name"
        )
    return name


class LegacySource:
    """A validated connection to the legacy audit database."""

    def __init__(self, url: URL, *, name: str | None = None, connect_timeout: int = 5) -> None:
        self.url = url
        self.fingerprint = check_source_name(name) if name else fingerprint_of(url)
        self.engine = sa.create_engine(
            url,
            poolclass=sa.NullPool,
            connect_args={"connect_timeout": connect_timeout},
        )

    @classmethod
    def open(cls, raw_url: str, *, name: str | None = None) -> LegacySource:
        """Connect and check the table's shape; raise a clear error when either fails."""
        source = cls(parse_source_url(raw_url), name=name)
        source.validate()
        return source

    def close(self) -> None:
        self.engine.dispose()

    def _connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise LegacySourceUnavailableError(
                f"cannot reach the legacy database {describe(self.url)}: {reason}",
                hint="check --source (host, port, database, credentials) and that it is running",
            ) from None

    def _columns(self, conn: sa.Connection, table: str) -> dict[str, str]:
        rows = conn.execute(
            sa.text(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = current_schema() and table_name = :t"
            ),
            {"t": table},
        )
        return {str(name): str(kind) for name, kind in rows}

    def validate(self) -> None:
        """The audit table exists with every legacy column, each of a compatible type."""
        with self._connect() as conn:
            columns = self._columns(conn, AUDIT_TABLE.name)
        where = f"{describe(self.url)}"
        if not columns:
            raise LegacySourceShapeError(
                f"the legacy database {where} has no table {AUDIT_TABLE.name!r}",
                hint="point --source at the old separate audit database (AUDITLOG_DATABASE_URL)",
            )
        missing = [c for c in EXPECTED_TYPES if c not in columns]
        wrong = [
            f"{c} is {columns[c]} (expected {' or '.join(sorted(EXPECTED_TYPES[c]))})"
            for c in EXPECTED_TYPES
            if c in columns and columns[c] not in EXPECTED_TYPES[c]
        ]
        problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + wrong
        if problems:
            raise LegacySourceShapeError(
                f"table {AUDIT_TABLE.name!r} in {where} is not the legacy audit table: "
                + "; ".join(problems),
                hint="expected the old separate audit table (id, clerkUserId, action, ...)",
            )

    def count(self) -> int:
        """Number of rows; refuses a table whose ids repeat (the import is keyed on the id)."""
        with self._connect() as conn:
            total, distinct = conn.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(AUDIT_TABLE.c.id)))
            ).one()
        if total != distinct:
            raise LegacySourceShapeError(
                f"{total - distinct} legacy audit row(s) share an id with another row",
                hint="the import is keyed on the legacy id; restore the table's primary key",
            )
        return int(total)

    def batches(self, size: int) -> Iterator[list[LegacyRow]]:
        """All rows in ``id`` order, ``size`` at a time."""
        t = AUDIT_TABLE
        last: int | None = None
        while True:
            query = sa.select(t).order_by(t.c.id).limit(size)
            if last is not None:
                query = query.where(t.c.id > last)
            with self._connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            batch = [_row(r) for r in rows]
            last = batch[-1].id
            yield batch

    def legacy_user_emails(self) -> dict[str, str] | None:
        """Clerk user id → e-mail from the Clerk-era ``users`` table, or None if it is absent."""
        with self._connect() as conn:
            columns = self._columns(conn, USERS_TABLE.name)
            if "clerkUserId" not in columns or "email" not in columns:
                return None
            t = USERS_TABLE
            rows = conn.execute(sa.select(t.c.clerkUserId, t.c.email))
            return {str(clerk): str(email) for clerk, email in rows if clerk and email}


def _row(r: sa.Row[Any]) -> LegacyRow:
    m = r._mapping
    ip = m["ip_address"]
    return LegacyRow(
        id=int(m["id"]),
        clerk_user_id=str(m["clerkUserId"]),
        action=str(m["action"]),
        resource_type=str(m["resource_type"]),
        resource_id=None if m["resource_id"] is None else str(m["resource_id"]),
        old_values=m["old_values"],
        new_values=m["new_values"],
        ip_address=None if ip is None else str(ip),
        user_agent=m["user_agent"],
        created_at=m["created_at"],
    )
