"""Request and response bodies of the data-subject rights API, and its subject id.

Inputs forbid unknown fields and accept only text PostgreSQL can store, so a client cannot
smuggle extra fields into the register and a malformed value never reaches the database.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from carelog.platform.http import PlainText, no_surrogates

#: A subject id as clients send it: bounded, and storable (no NUL, no unpaired surrogate), so a
#: hostile path segment is a 422 at the edge, never a database error.
SubjectId = Annotated[PlainText, AfterValidator(no_surrogates), Field(min_length=1, max_length=256)]


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(
        min_length=1, max_length=2000, description="the request (e.g. 'Art. 17 e-mail of ...')"
    )


class ErasureOut(BaseModel):
    erasure_id: str
    subject_id: str
    status: str
    certificate: dict[str, Any] | None = None
    signature: dict[str, Any] | None = None


class DisclosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: PlainText = Field(min_length=1, max_length=500)
    purpose: PlainText = Field(min_length=1, max_length=500)
    description: PlainText = Field(min_length=1, max_length=2000)
    disclosed_at: AwareDatetime


class DisclosureOut(BaseModel):
    disclosure_id: uuid.UUID
