"""Response model of the Stripe webhook."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class WebhookAck(BaseModel):
    received: bool = True
    status: Literal["processed", "duplicate", "ignored"]
