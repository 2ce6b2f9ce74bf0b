"""Committed audit events behind the writer, in stream order, from a cursor.

The reader calls ``app.audit_stream_read`` (system role only, see 0004_audit_streams.sql): the
events of every organization after a position, ordered by ``(txid, created_at, id)`` and
stopping at ``app.txid_horizon()``. Every transaction below the horizon has finished, so what
the reader returns is final: an event whose transaction commits late has a txid at or above
the horizon until it commits, and is read then, never skipped. Events of one transaction share
its txid and come in ``(created_at, id)`` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from carelog.audit.query import AuditRecord
from carelog.audit.streams.base import NIL_UUID, Position, StreamEvent

MAX_BATCH = 10_000
_READ = sa.text(
    "select * from app.audit_stream_read(:txid, :created_at, :id, app.txid_horizon(), :limit)"
)
_LAG = sa.text(
    "select pending, extract(epoch from now() - oldest)::float8 as seconds "
    "from app.audit_stream_lag(:txid, :created_at, :id)"
)
_HORIZON = sa.text("select app.txid_horizon()")


#: Before the first event (every real txid is above 0, so the time and id never decide): a new
#: destination receives the whole retained trail. Matches the cursor table's defaults.
START = Position(0, datetime(1970, 1, 1, tzinfo=UTC), NIL_UUID)


def _params(after: Position) -> dict[str, Any]:
    return {"txid": after.txid, "created_at": after.created_at, "id": after.id}


def _event(row: sa.Row[Any]) -> StreamEvent:
    values = dict(row._mapping)
    txid = int(values.pop("txid"))
    ip = values["ip_address"]
    values["ip_address"] = None if ip is None else str(ip)
    record = AuditRecord(**values)
    return StreamEvent(
        id=record.id,
        org_id=record.org_id,
        position=Position(txid, record.created_at, record.id),
        record=record.to_json_dict(),
    )


async def read_batch(conn: AsyncConnection, after: Position, limit: int) -> list[StreamEvent]:
    """Up to ``limit`` final events after ``after`` (as the system role)."""
    limit = max(1, min(limit, MAX_BATCH))
    rows = await conn.execute(_READ, {**_params(after), "limit": limit})
    return [_event(row) for row in rows]


@dataclass(frozen=True, slots=True)
class Lag:
    events: int
    seconds: float  # age of the oldest event not yet delivered (0 when none)


async def measure_lag(conn: AsyncConnection, after: Position) -> Lag:
    """Committed events after ``after`` and how long the oldest of them has waited."""
    row = (await conn.execute(_LAG, _params(after))).one()
    return Lag(int(row.pending), max(0.0, float(row.seconds or 0.0)))


async def horizon(conn: AsyncConnection) -> int:
    return int((await conn.execute(_HORIZON)).scalar_one())
