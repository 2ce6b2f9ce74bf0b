"""Saving a schedule and blocked dates, with their audit events. Services never commit.

The whole replacement (schedule upsert, old windows deleted, new ones inserted, audit row) is
one unit of work, so a crash never leaves a schedule without its windows; the legacy platform
ran the upsert outside its batch.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from carelog.audit import log_audit_event
from carelog.db.unit import Unit
from carelog.platform.auth.dependencies import RequestUnit
from carelog.platform.common import mark_setup_step, require_expert
from carelog.platform.errors import conflict, not_found
from carelog.platform.schedule import queries
from carelog.platform.schedule.schemas import (
    Availability,
    BlockedDateIn,
    BlockedDateOut,
    ScheduleIn,
    ScheduleOut,
)


async def _current(unit: RequestUnit) -> tuple[uuid.UUID | None, dict[str, object] | None]:
    me = unit.identity
    row = await queries.schedule_for_update(unit.session, me.org_id, me.user_id)
    if row is None:
        return None, None
    windows = await _windows(unit.session, row.id)
    return row.id, {"timezone": row.timezone, "availabilities": windows}


async def _windows(session: Unit, schedule_id: uuid.UUID) -> list[dict[str, str]]:
    return [
        {
            "day_of_week": r.d,
            "start_time": r.start_time.strftime("%H:%M"),
            "end_time": r.end_time.strftime("%H:%M"),
        }
        for r in await queries.schedule_windows(session, schedule_id)
    ]


async def save_schedule(unit: RequestUnit, data: ScheduleIn) -> ScheduleOut:
    session, me = unit.session, unit.identity
    await require_expert(session, me.user_id)
    _, old = await _current(unit)
    schedule_id = await queries.upsert_schedule(session, me.org_id, me.user_id, data.timezone)
    await queries.delete_schedule_windows(session, schedule_id)
    if data.availabilities:
        await queries.insert_schedule_windows(
            session,
            me.org_id,
            schedule_id,
            [
                queries.Window(a.day_of_week.value, a.start_time, a.end_time)
                for a in data.availabilities
            ],
        )
        await mark_setup_step(session, me.org_id, me.user_id, "availability")
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


async def add_blocked_date(unit: RequestUnit, data: BlockedDateIn) -> BlockedDateOut:
    session, me = unit.session, unit.identity
    await require_expert(session, me.user_id)
    try:
        async with session.begin_nested():
            new_id = await queries.insert_blocked_date(
                session, me.org_id, me.user_id, data.date, data.timezone, data.reason
            )
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


async def remove_blocked_date(unit: RequestUnit, blocked_id: int) -> None:
    me = unit.identity
    row = await queries.delete_blocked_date(unit.session, me.org_id, me.user_id, blocked_id)
    if row is None:
        raise not_found("blocked date")
    await log_audit_event(
        "BLOCKED_DATE_REMOVED",
        "blocked_date",
        blocked_id,
        {"old_values": {"date": row.date.isoformat(), "timezone": row.timezone}},
    )
