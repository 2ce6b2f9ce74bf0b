"""Request and response models of the expert-profile endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from carelog.platform.http import PlainText


class SocialLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PlainText = Field(min_length=1, max_length=50, description="platform, e.g. linkedin")
    url: AnyHttpUrl


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_name: PlainText = Field(min_length=1, max_length=100)
    last_name: PlainText = Field(min_length=1, max_length=100)
    headline: PlainText | None = Field(default=None, max_length=200)
    short_bio: PlainText | None = Field(default=None, max_length=1000)
    long_bio: PlainText | None = Field(default=None, max_length=10000)
    profile_picture: AnyHttpUrl | None = None
    primary_category_id: uuid.UUID | None = None
    secondary_category_id: uuid.UUID | None = None
    social_links: list[SocialLink] = Field(default_factory=list, max_length=20)


class ProfileOut(BaseModel):
    id: uuid.UUID
    first_name: str
    last_name: str
    headline: str | None
    short_bio: str | None
    long_bio: str | None
    profile_picture: str | None
    primary_category_id: uuid.UUID | None
    secondary_category_id: uuid.UUID | None
    social_links: list[SocialLink]
    published: bool
    practitioner_agreement_accepted_at: datetime | None
    practitioner_agreement_version: str | None
