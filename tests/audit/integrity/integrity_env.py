"""Integrity test helpers (importable by name: two conftest modules exist under tests/audit).

A migrated database with the two-tenant world, a signing key, a sealer and tamper helpers.

Tampering is done the way an attacker with superuser access would: through the admin
connection, with triggers switched off (``session_replication_role = replica``), because the
append-only triggers refuse UPDATE and DELETE even to a superuser.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from hypothesis import strategies as st
from psycopg.types.string import TextLoader

from carelog.audit.integrity import SigningKeyring
from carelog.audit.integrity.canonical import encode_plain, normalise_value
from carelog.audit.integrity.rows import EVENT_FIELDS, RowEncoder, events_copy, split_line
from carelog.audit.integrity.sealer import Sealer
from carelog.audit.integrity.verify import VerifyReport, verify_org
from carelog.db.engine import Database
from carelog.db.session import Scopes
from world import World

BASE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
COLUMNS = EVENT_FIELDS  # the stored columns a leaf covers


def make_event(org_id: uuid.UUID, i: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "workos_user_id": f"user_{i % 3}",
        "actor_type": "user",
        "action": "PROFILE_VIEWED",
        "resource_type": "profile",
        "resource_id": f"p{i}",
        "outcome": "success",
        "data_subject_id": f"patient_{i % 5}" if i % 2 else None,
        "old_values": {"name": "masked:hmac-sha256:ab", "n": i} if i % 4 == 0 else None,
        "new_values": {"name": "masked:hmac-sha256:cd", "n": i + 1} if i % 4 == 0 else None,
        "metadata": {"via": "web", "page": i, "ratio": 1.50, "ünï": ["x", None, True]}
        if i % 3 == 0
        else {"via": "api"},
        "ip_address": "2001:db8::1" if i % 5 == 0 else "10.0.0.1",
        "user_agent": "pytest",
        "request_id": f"req-{i}",
        "created_at": BASE + timedelta(seconds=i),
        "source": "live",
        "schema_version": 1,
    }
    row.update(overrides)
    return row


@dataclass
class Integrity:
    db: Database
    world: World
    scopes: Scopes
    keyring: SigningKeyring
    sealer: Sealer

    org: uuid.UUID
    other_org: uuid.UUID
    key_env: str = ""

    def cli_env(self) -> dict[str, str]:
        db = self.db
        return {
            "CARELOG_DATABASE_URL": db.admin_url.render_as_string(hide_password=False),
            "CARELOG_ROLE_PREFIX": db.settings.roles.owner.removesuffix("_owner"),
            "CARELOG_ENV": "test",
            "CARELOG_AUDIT_SIGNING_KEYS": self.key_env,
        }

    def admin(self) -> sa.Engine:
        return self.db.sync_engine("admin")

    def insert(self, rows: Iterable[dict[str, Any]], *, txid: int | None = None) -> list[uuid.UUID]:
        """Insert rows as the superuser, in ONE transaction (one txid)."""
        ids = []
        cols = list(COLUMNS) + (["txid"] if txid is not None else [])
        sql = sa.text(
            f"INSERT INTO audit_logs ({', '.join(chr(34) + c + chr(34) for c in cols)}) VALUES ("
            + ", ".join(
                f"CAST(:{c} AS jsonb)"
                if c in ("old_values", "new_values", "metadata")
                else f"CAST(:{c} AS inet)"
                if c == "ip_address"
                else f":{c}"
                for c in cols
            )
            + ")"
        )
        with self.admin().begin() as conn:
            for row in rows:
                params = {
                    k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in row.items()
                }
                if txid is not None:
                    params["txid"] = txid
                conn.execute(sql, params)
                ids.append(row["id"])
        return ids

    def add(self, n: int, *, start: int = 0, org: uuid.UUID | None = None) -> list[uuid.UUID]:
        return self.insert(make_event(org or self.org, start + i) for i in range(n))

    def tamper(self, *statements: str, **params: Any) -> None:
        """Run SQL as the superuser with every trigger off, as an attacker would."""
        with self.admin().begin() as conn:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for statement in statements:
                conn.execute(sa.text(statement), params)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.admin().connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    async def verify(
        self, org: uuid.UUID | None = None, *, window: timedelta = timedelta(minutes=5), **kw: Any
    ) -> VerifyReport:
        org = org or self.org
        async with self.scopes.system_scope("system:verify", org) as session:
            return await verify_org(
                session, org, self.keyring.verifying_keyring(), sealing_window=window, **kw
            )


# Hypothesis strategies shared by the fast-path and parallel-path equivalence tests.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def admin_conninfo(integrity: Integrity) -> str:
    """A libpq URL for a raw psycopg connection as the admin (the equivalence tests)."""
    return integrity.db.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)


def _exact_int(text: str) -> Any:
    value = int(text)
    return value if -(2**63) <= value <= 2**64 - 1 else orjson.Fragment(text)


async def reference_canonicals(conn: psycopg.AsyncConnection[Any], org: uuid.UUID) -> list[bytes]:
    """Canonical bytes of every event of ``org`` in sealing order, built without the encoder
    under test: typed values from psycopg's own loaders (uuid, inet, timestamptz) normalised
    by the canonical rules, jsonb parsed here with its numbers kept as stored. What every
    route of :class:`RowEncoder` must reproduce byte for byte."""
    columns = ", ".join(f'"{c}"' for c in EVENT_FIELDS)
    async with conn.cursor() as cur:
        cur.adapters.register_loader("jsonb", TextLoader)
        await cur.execute(
            f"SELECT {columns} FROM audit_logs WHERE org_id = %s ORDER BY txid, created_at, id",
            (org,),
        )
        rows = await cur.fetchall()
    out = []
    for row in rows:
        doc: dict[str, Any] = {}
        for name, value in zip(EVENT_FIELDS, row, strict=True):
            if name in ("metadata", "new_values", "old_values") and value is not None:
                doc[name] = json.loads(value, parse_float=orjson.Fragment, parse_int=_exact_int)
            else:
                doc[name] = normalise_value(value)
        doc["v"] = 1
        out.append(encode_plain(doc))
    return out


async def encoder_canonicals(
    conn: psycopg.AsyncConnection[Any], org: uuid.UUID
) -> tuple[list[bytes], list[bytes]]:
    """The same events through the encoder: (its usual route, its exact route)."""
    encoder = RowEncoder()
    quick, exact = [], []
    async with conn.cursor() as cur, cur.copy(events_copy(org)) as copy:
        async for data in copy:
            line = bytes(data)
            quick.append(encoder.canonical(split_line(line), line))
            exact.append(RowEncoder.exact(split_line(line)))
    return quick, exact
