"""The SQL of schedules and blocked dates, kept in one place so it can be read as SQL.

Every statement runs on the session of the caller's unit, inside the request's transaction, so
row-level security decides once more what it can see or change; the statements on schedules and
blocked dates still name the owner (``workos_user_id``) and the organization themselves, so a
missing policy never widens them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from carelog.db.unit import Row, Unit

SCHEDULE_FOR_UPDATE = sa.text(
    "select id, timezone from schedules where org_id = :org_id and workos_user_id = :user_id"
    " for update"
)
# Windows in week order (the ``day`` enum's order, not the alphabet), then by start time.
SCHEDULE_WINDOWS = sa.text(
    "select day_of_week::text as d, start_time, end_time from schedule_availabilities"
    " where schedule_id = :schedule_id"
    " order by array_position(enum_range(null::day), day_of_week), start_time"
)
UPSERT_SCHEDULE = sa.text(
    "insert into schedules (org_id, workos_user_id, timezone)"
    " values (:org_id, :user_id, :timezone)"
    " on conflict (org_id, workos_user_id) do update set timezone = excluded.timezone"
    " returning id"
)
DELETE_SCHEDULE_WINDOWS = sa.text(
    "delete from schedule_availabilities where schedule_id = :schedule_id"
)
INSERT_SCHEDULE_WINDOW = sa.text(
    "insert into schedule_availabilities"
    " (org_id, schedule_id, day_of_week, start_time, end_time)"
    " values (:org_id, :schedule_id, cast(:day_of_week as day), cast(:start_time as time),"
    " cast(:end_time as time))"
)
INSERT_BLOCKED_DATE = sa.text(
    "insert into blocked_dates (org_id, workos_user_id, date, timezone, reason)"
    " values (:org_id, :user_id, :date, :timezone, :reason) returning id"
)
DELETE_BLOCKED_DATE = sa.text(
    "delete from blocked_dates where id = :blocked_id and org_id = :org_id"
    " and workos_user_id = :user_id"
    " returning date, timezone"
)


@dataclass(frozen=True)
class Window:
    """One weekly availability as stored: ``day_of_week`` is the ``day`` enum's label."""

    day_of_week: str
    start_time: str
    end_time: str


async def schedule_for_update(session: Unit, org_id: uuid.UUID, user_id: str) -> Row | None:
    """``(id, timezone)`` of the caller's schedule, locked until the unit ends."""
    result = await session.execute(SCHEDULE_FOR_UPDATE, {"org_id": org_id, "user_id": user_id})
    return result.first()


async def schedule_windows(session: Unit, schedule_id: uuid.UUID) -> Sequence[Row]:
    """``(d, start_time, end_time)`` rows in week order; the times are ``datetime.time``."""
    result = await session.execute(SCHEDULE_WINDOWS, {"schedule_id": schedule_id})
    return result.all()


async def upsert_schedule(
    session: Unit, org_id: uuid.UUID, user_id: str, timezone: str
) -> uuid.UUID:
    result = await session.execute(
        UPSERT_SCHEDULE, {"org_id": org_id, "user_id": user_id, "timezone": timezone}
    )
    schedule_id: uuid.UUID = result.scalar_one()
    return schedule_id


async def delete_schedule_windows(session: Unit, schedule_id: uuid.UUID) -> None:
    await session.execute(DELETE_SCHEDULE_WINDOWS, {"schedule_id": schedule_id})


async def insert_schedule_windows(
    session: Unit, org_id: uuid.UUID, schedule_id: uuid.UUID, windows: Sequence[Window]
) -> None:
    """All of ``windows`` in one batch (at least one: an empty batch is not a statement)."""
    await session.execute(
        INSERT_SCHEDULE_WINDOW,
        [
            {
                "org_id": org_id,
                "schedule_id": schedule_id,
                "day_of_week": w.day_of_week,
                "start_time": w.start_time,
                "end_time": w.end_time,
            }
            for w in windows
        ],
    )


async def insert_blocked_date(
    session: Unit,
    org_id: uuid.UUID,
    user_id: str,
    date: dt.date,
    timezone: str,
    reason: str | None,
) -> int:
    result = await session.execute(
        INSERT_BLOCKED_DATE,
        {
            "org_id": org_id,
            "user_id": user_id,
            "date": date,
            "timezone": timezone,
            "reason": reason,
        },
    )
    new_id: int = result.scalar_one()
    return new_id


async def delete_blocked_date(
    session: Unit, org_id: uuid.UUID, user_id: str, blocked_id: int
) -> Row | None:
    """``(date, timezone)`` of the removed day; ``None`` if it was not the caller's."""
    result = await session.execute(
        DELETE_BLOCKED_DATE, {"blocked_id": blocked_id, "org_id": org_id, "user_id": user_id}
    )
    return result.first()
