"""What every stream shares: an event in stream order, the sink interface, retry delays."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from carelog.audit.streams.config import Destination

NIL_UUID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the stream order ``(txid, created_at, id)``; events after it come next."""

    txid: int
    created_at: datetime
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One committed audit event: its stable id (for deduplication), org, position and body."""

    id: uuid.UUID
    org_id: uuid.UUID
    position: Position
    record: dict[str, Any]  # JSON-ready, the columns of the JSONL export


class DeliveryError(Exception):
    """A destination did not confirm a batch; the cursor stays where it was."""


class Sink(Protocol):
    destination: Destination

    async def deliver(self, events: Sequence[StreamEvent]) -> None:
        """Return only once the destination confirmed every event; raise DeliveryError if not."""

    async def close(self) -> None: ...


def backoff_delay(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter: between half and all of ``min(cap, base * 2**(n-1))``.

    The jitter keeps many runners (or many retries of one receiver's clients) from retrying in
    lock step; the half that is kept guarantees the delay still grows.
    """
    ceiling = min(cap, base * float(1 << max(0, min(failures, 32) - 1)))
    jitter = random.uniform(0, ceiling / 2) if rng is None else rng.uniform(0, ceiling / 2)
    return ceiling / 2 + jitter
