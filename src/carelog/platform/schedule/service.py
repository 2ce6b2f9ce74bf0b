"""Saving a schedule and blocked dates, with their audit events. Services never commit.

The whole replacement (schedule upsert, old windows deleted, new ones inserted, audit row) is
one unit of work, so a crash never leaves a schedule without its windows; the legacy platform
ran the upsert outside its batch.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit import log_audit_event
from carelog.platform.common import mark_setup_step, require_expert
from carelog.platform.errors import conflict, not_found
from carelog.platform.schedule.schemas import (
    Availability,
    BlockedDateIn,
    BlockedDateOut,
    ScheduleIn,
    ScheduleOut,
)


async def _current(
    session: AsyncSession, org_id: uuid.UUID, user_id: str
) -> tuple[uuid.UUID | None, dict[str, object] | None]:
    row = (
        await session.execute(
            sa.text(
                "select id, timezone from schedules where org_id = :o and workos_user_id = :u"
                " for update"
            ),
            {"o": org_id, "u": user_id},
        )
    ).first()
    if row is None:
        return None, None
    windows = await _windows(session, row.id)
    return row.id, {"timezone": row.timezone, "availabilities": windows}


async def _windows(session: AsyncSession, schedule_id: uuid.UUID) -> list[dict[str, str]]:
    rows = await session.execute(
        sa.text(
            "select day_of_week::text as d, start_time, end_time from schedule_availabilities"
            " where schedule_id = :s order by array_position(enum_range(null::day), day_of_week),"
            " start_time"
        ),
        {"s": schedule_id},
    )
    return [
        {
            "day_of_week": r.d,
            "start_time": r.start_time.strftime("%H:%M"),
            "end_time": r.end_time.strftime("%H:%M"),
        }
        for r in rows
    ]


async def save_schedule(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, data: ScheduleIn
) -> ScheduleOut:
    await require_expert(session, user_id)
    _, old = await _current(session, org_id, user_id)
    schedule_id = (
        await session.execute(
            sa.text(
                "insert into schedules (org_id, workos_user_id, timezone) values (:o, :u, :tz)"
                " on conflict (org_id, workos_user_id) do update set timezone = excluded.timezone"
                " returning id"
            ),
            {"o": org_id, "u": user_id, "tz": data.timezone},
        )
    ).scalar_one()
    await session.execute(
        sa.text("delete from schedule_availabilities where schedule_id = :s"), {"s": schedule_id}
    )
    if data.availabilities:
        await session.execute(
            sa.text(
                "insert into schedule_availabilities"
                " (org_id, schedule_id, day_of_week, start_time, end_time)"
                " values (:o, :s, cast(:d as day), cast(:st as time), cast(:et as time))"
            ),
            [
                {
                    "o": org_id,
                    "s": schedule_id,
                    "d": a.day_of_week.value,
                    "st": a.start_time,
                    "et": a.end_time,
                }
                for a in data.availabilities
            ],
        )
        await mark_setup_step(session, org_id, user_id, "availability")
    windows = await _windows(session, schedule_id)
    new = {"timezone": data.timezone, "availabilities": windows}
    await log_audit_event(
        "SCHEDULE_UPDATED",
        "schedule",
        schedule_id,
        {"old_values": old or {}, "new_values": new},
        {"availability_count": len(windows), "created": old is None},
    )
    return ScheduleOut(
        id=str(schedule_id),
        timezone=data.timezone,
        availabilities=[Availability.model_validate(w) for w in windows],
    )


async def add_blocked_date(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, data: BlockedDateIn
) -> BlockedDateOut:
    await require_expert(session, user_id)
    try:
        async with session.begin_nested():
            new_id = (
                await session.execute(
                    sa.text(
                        "insert into blocked_dates (org_id, workos_user_id, date, timezone, reason)"
                        " values (:o, :u, :d, :tz, :r) returning id"
                    ),
                    {
                        "o": org_id,
                        "u": user_id,
                        "d": data.date,
                        "tz": data.timezone,
                        "r": data.reason,
                    },
                )
            ).scalar_one()
    except IntegrityError:
        raise conflict(
            "this date is already blocked", "BLOCKED_DATE_EXISTS", field="date"
        ) from None
    # The free-text reason may describe a person's health: only whether there is one is logged.
    await log_audit_event(
        "BLOCKED_DATE_ADDED",
        "blocked_date",
        new_id,
        {"new_values": {"date": data.date.isoformat(), "timezone": data.timezone}},
        {"has_reason": bool(data.reason)},
    )
    return BlockedDateOut(id=new_id, date=data.date, timezone=data.timezone, reason=data.reason)


async def remove_blocked_date(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, blocked_id: int
) -> None:
    row = (
        await session.execute(
            sa.text(
                "delete from blocked_dates where id = :i and org_id = :o and workos_user_id = :u"
                " returning date, timezone"
            ),
            {"i": blocked_id, "o": org_id, "u": user_id},
        )
    ).first()
    if row is None:
        raise not_found("blocked date")
    await log_audit_event(
        "BLOCKED_DATE_REMOVED",
        "blocked_date",
        blocked_id,
        {"old_values": {"date": row.date.isoformat(), "timezone": row.timezone}},
    )
