"""Request and response models of the event-type endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from carelog.platform.http import PlainText

#: Stripe's largest charge (99,999,999 in the smallest unit), well inside an SQL integer.
MAX_PRICE = 99_999_999

Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$")]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PlainText = Field(min_length=1, max_length=200)
    slug: Slug
    description: PlainText | None = Field(default=None, max_length=5000)
    duration_in_minutes: int = Field(ge=1, le=720)
    is_active: bool = True
    price: int = Field(default=0, ge=0, le=MAX_PRICE, description="cents")
    currency: Currency = "eur"
    stripe_product_id: PlainText | None = Field(default=None, max_length=255)
    stripe_price_id: PlainText | None = Field(default=None, max_length=255)


class EventPatch(BaseModel):
    """Only the fields sent change; ``null`` is refused for the required ones."""

    model_config = ConfigDict(extra="forbid")

    name: PlainText | None = Field(default=None, min_length=1, max_length=200)
    slug: Slug | None = None
    description: PlainText | None = Field(default=None, max_length=5000)
    duration_in_minutes: int | None = Field(default=None, ge=1, le=720)
    is_active: bool | None = None
    price: int | None = Field(default=None, ge=0, le=MAX_PRICE)
    currency: Currency | None = None
    stripe_product_id: PlainText | None = Field(default=None, max_length=255)
    stripe_price_id: PlainText | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _no_null_required(self) -> EventPatch:
        required = ("name", "slug", "duration_in_minutes", "is_active", "price", "currency")
        for name in required:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class EventOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    description: str | None
    duration_in_minutes: int
    is_active: bool
    order: int
    price: int
    currency: str
    stripe_product_id: str | None
    stripe_price_id: str | None


class EventOrderIn(BaseModel):
    """The caller's event ids in the wanted order (position = new ``order``)."""

    model_config = ConfigDict(extra="forbid")

    event_ids: list[uuid.UUID] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _unique(self) -> EventOrderIn:
        if len(set(self.event_ids)) != len(self.event_ids):
            raise ValueError("event_ids must not repeat")
        return self
