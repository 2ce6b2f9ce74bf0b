"""Request and response models of the meeting endpoints.

``extra="forbid"``: a client that sends ``stripe_payment_status`` (or any other field) gets a
422, so nobody can mark a booking as paid; payment state comes from Stripe only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from carelog.platform.http import PlainText
from carelog.platform.schedule.schemas import Timezone

EMAIL_PATTERN = r"^[^@\s\x00]{1,64}@[^@\s\x00]+\.[^@\s\x00]+$"


class BookingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    start_time: AwareDatetime = Field(description="slot start, with a UTC offset")
    guest_email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    guest_name: PlainText = Field(min_length=1, max_length=200)
    guest_notes: PlainText | None = Field(default=None, max_length=5000)
    timezone: Timezone = Field(description="the guest's IANA timezone")


class MeetingOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    start_time: datetime
    end_time: datetime
    timezone: str
    status: str
    stripe_payment_status: str
