"""Request and response models of the schedule endpoints (validation lives here)."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import zoneinfo
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from carelog.db.schema.base import Day
from carelog.platform.http import PlainText

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(value: str) -> dt.time:
    match = _HHMM.match(value)
    if not match:
        raise ValueError("must be a time as H:MM or HH:MM (00:00-23:59)")
    return dt.time(int(match.group(1)), int(match.group(2)))


def check_timezone(value: str) -> str:
    """A real IANA zone name: the slot arithmetic depends on it."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA timezone name such as Europe/Lisbon") from None
    return value


Timezone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_timezone)]
HHMM = Annotated[str, AfterValidator(lambda v: parse_hhmm(v).strftime("%H:%M"))]


class Availability(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day_of_week: Day
    start_time: HHMM
    end_time: HHMM

    @model_validator(mode="after")
    def _order(self) -> Availability:
        if parse_hhmm(self.start_time) >= parse_hhmm(self.end_time):
            raise ValueError("start_time must be before end_time")
        return self


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: Timezone
    availabilities: list[Availability] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _no_overlaps(self) -> ScheduleIn:
        by_day: dict[Day, list[Availability]] = {}
        for a in self.availabilities:
            by_day.setdefault(a.day_of_week, []).append(a)
        for day, windows in by_day.items():
            ordered = sorted(windows, key=lambda a: a.start_time)
            for prev, nxt in itertools.pairwise(ordered):
                if nxt.start_time < prev.end_time:
                    raise ValueError(
                        f"availabilities overlap on {day.value}: "
                        f"{prev.start_time}-{prev.end_time} and {nxt.start_time}-{nxt.end_time}"
                    )
        return self


class ScheduleOut(BaseModel):
    id: str
    timezone: str
    availabilities: list[Availability]


class BlockedDateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date
    timezone: Timezone = "UTC"
    reason: PlainText | None = Field(default=None, max_length=500)


class BlockedDateOut(BaseModel):
    id: int
    date: dt.date
    timezone: str
    reason: str | None
