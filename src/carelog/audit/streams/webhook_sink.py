"""HTTPS webhooks: signed JSON batches, retried with exponential backoff and jitter.

Each batch is one ``POST`` of ``{"events": [...]}`` (the JSONL export's columns per event) with

- ``X-Carelog-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``: the
  receiver recomputes it over the raw body (:func:`verify_signature`) and rejects old
  timestamps, so a captured request cannot be replayed later or altered;
- ``X-Carelog-Event-Ids``: the batch's event ids, comma-separated, in order. Delivery is at
  least once: a receiver deduplicates by event id.

Any 2xx is a delivery. Anything else (another status, a timeout, a refused connection) is
retried here a few times with growing, jittered delays; after that the runner records the
error and tries the same batch again later, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

import httpx
import orjson

from carelog.audit.streams.base import DeliveryError, StreamEvent, backoff_delay
from carelog.audit.streams.config import Destination

SIGNATURE_HEADER = "X-Carelog-Signature"
EVENT_IDS_HEADER = "X-Carelog-Event-Ids"
#: Events per request: keeps X-Carelog-Event-Ids (37 bytes an id) under common 8 KiB limits.
WEBHOOK_BATCH = 100


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Carelog-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature matches the raw body and is recent enough."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


def encode_batch(events: Sequence[StreamEvent]) -> bytes:
    return orjson.dumps({"events": [e.record for e in events]})


class WebhookSink:
    """POSTs batches to one webhook URL."""

    def __init__(
        self,
        destination: Destination,
        *,
        attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if destination.kind != "webhook" or not destination.webhook_secret:
            raise ValueError("a webhook destination with a signing secret is required")
        self.destination = destination
        self._secret = destination.webhook_secret
        self._attempts = max(1, attempts)
        self._base = base_delay
        self._cap = max_delay
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def deliver(self, events: Sequence[StreamEvent]) -> None:
        if not events:
            return
        body = encode_batch(events)
        ids = ",".join(str(e.id) for e in events)
        problem = ""
        for attempt in range(1, self._attempts + 1):
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, int(self._clock()), body),
                EVENT_IDS_HEADER: ids,
            }
            try:
                response = await self._client.post(
                    self.destination.url, content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if 200 <= response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}"
            if attempt < self._attempts:
                await asyncio.sleep(backoff_delay(attempt, self._base, self._cap))
        raise DeliveryError(
            f"webhook {self.destination.name}: {problem} ({self._attempts} attempts)"
        )

    async def close(self) -> None:
        await self._client.aclose()
