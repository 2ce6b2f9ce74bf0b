"""Is this start time a bookable slot of this expert? Pure rules, no database.

The rules of the legacy platform's slot validation: the start lies inside a weekly availability
window of the expert's schedule (wall-clock time in the schedule's IANA zone, DST-aware), on
the slot grid (``time_slot_interval`` from the window's start), the whole meeting fits in the
window, it respects the minimum notice and the booking window, its day is not blocked (each
blocked date in its own timezone), and, widened by the before/after buffers, it overlaps no
active booking. Checked inside the transaction that holds the expert's schedule lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Rules:
    timezone: str
    windows: Sequence[tuple[str, dt.time, dt.time]]  # (day, start, end) wall-clock
    before_buffer: int = 0
    after_buffer: int = 0
    minimum_notice: int = 0
    slot_interval: int = 15
    booking_window_days: int = 60


class SlotRefusedError(Exception):
    """``taken`` separates "someone booked it" (409) from "never bookable" (422)."""

    def __init__(self, reason: str, *, taken: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.taken = taken


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def check_slot(
    rules: Rules,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    blocked: Iterable[tuple[dt.date, str]],
    booked: Iterable[tuple[dt.datetime, dt.datetime]],
) -> None:
    """Raise :class:`SlotRefusedError` with the first rule the slot breaks."""
    if start < now + dt.timedelta(minutes=rules.minimum_notice):
        raise SlotRefusedError("the slot is in the past or inside the expert's minimum notice")
    if start > now + dt.timedelta(days=rules.booking_window_days):
        raise SlotRefusedError("the slot is beyond the expert's booking window")
    local = start.astimezone(ZoneInfo(rules.timezone))
    local_end = end.astimezone(ZoneInfo(rules.timezone))
    day = _DAYS[local.weekday()]
    begin = local.hour * 60 + local.minute
    finish = begin + int((end - start).total_seconds() // 60)
    if local.second or local.microsecond or local_end.date() != local.date():
        raise SlotRefusedError("the slot is not on the expert's availability grid")
    fits = [
        w
        for w in rules.windows
        if w[0] == day and _minutes(w[1]) <= begin and finish <= _minutes(w[2])
    ]
    if not fits or all((begin - _minutes(w[1])) % rules.slot_interval for w in fits):
        raise SlotRefusedError("the slot is outside the expert's availability")
    for date, zone in blocked:
        if start.astimezone(ZoneInfo(zone)).date() == date:
            raise SlotRefusedError("the expert is not available on this day")
    # Every meeting occupies [start - before, end + after): two meetings clash when those
    # intervals overlap, i.e. when they are less than before + after minutes apart.
    gap = dt.timedelta(minutes=rules.before_buffer + rules.after_buffer)
    for other_start, other_end in booked:
        if other_start < end + gap and start < other_end + gap:
            raise SlotRefusedError("the slot overlaps another booking", taken=True)
