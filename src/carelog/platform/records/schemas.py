"""Request and response bodies of the medical-records API.

Responses carry plaintext for the authorised reader only and never the stored ciphertext, key
ids or nonces (the legacy platform returned the encrypted envelopes next to the plaintext). Inputs
forbid unknown fields, so a client cannot smuggle ``expert_id`` or ``version`` into a write.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from carelog.platform.http import INT4_MAX, StorableJson, UnicodeText

MAX_CONTENT_CHARS = 100_000


class RecordCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: UnicodeText = Field(
        min_length=1, max_length=MAX_CONTENT_CHARS, description="Clinical note (PHI)."
    )
    metadata: StorableJson | None = Field(
        default=None, description="Optional structured data, encrypted like the content."
    )


class RecordUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_id: uuid.UUID
    content: UnicodeText = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    metadata: StorableJson | None = Field(
        default=None, description="Omitted: the stored metadata is kept."
    )
    expected_version: int | None = Field(
        default=None,
        ge=1,
        le=INT4_MAX,
        description="Optimistic concurrency: refuse (409) unless the record is at this version.",
    )


class RecordCreated(BaseModel):
    record_id: uuid.UUID
    meeting_id: uuid.UUID
    version: int
    created_at: datetime


class RecordUpdated(BaseModel):
    record_id: uuid.UUID
    meeting_id: uuid.UUID
    version: int
    last_modified_at: datetime


class RecordOut(BaseModel):
    id: uuid.UUID
    meeting_id: uuid.UUID
    expert_id: str
    content: str
    metadata: dict[str, Any] | None
    version: int
    created_at: datetime
    last_modified_at: datetime


class RecordList(BaseModel):
    meeting_id: uuid.UUID
    count: int
    records: list[RecordOut]
