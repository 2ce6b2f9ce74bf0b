"""NATS JetStream: one message per event on ``<subject>.<org_id>``, deduplicated by event id.

Every message carries ``Nats-Msg-Id: <event id>``: JetStream drops a message whose id it saw
within the stream's duplicate window (set to ten minutes when the sink creates the stream), so a
batch re-sent after a crash between delivery and cursor update is stored once; consumers that
see one anyway deduplicate by the same id. Messages are published one at a time, each waiting
for its acknowledgement, so the stream holds them in stream order. The stream is created when
it does not exist (subjects ``<subject>.>``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import nats
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carelog.audit.streams.base import DeliveryError, StreamEvent
from carelog.audit.streams.config import Destination

log = logging.getLogger(__name__)
DUPLICATE_WINDOW_SECONDS = 600.0


class NatsSink:
    """Publishes to one JetStream stream, reconnecting after any failure."""

    def __init__(
        self, destination: Destination, *, connect_timeout: float = 2.0, ack_timeout: float = 5.0
    ) -> None:
        if destination.kind != "nats":
            raise ValueError("a nats destination is required")
        self.destination = destination
        self._connect_timeout = connect_timeout
        self._ack_timeout = ack_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._last_problem = ""

    def subject_for(self, event: StreamEvent) -> str:
        return f"{self.destination.nats_subject}.{event.org_id}"

    async def _quiet(self, exc: Exception) -> None:
        self._last_problem = str(exc) or type(exc).__name__
        log.debug("nats %s: %s", self.destination.name, exc)

    async def _jetstream(self) -> JetStreamContext:
        if self._nc is not None and self._js is not None and self._nc.is_connected:
            return self._js
        await self.close()
        nc = await nats.connect(
            servers=[self.destination.url],
            connect_timeout=self._connect_timeout,
            # one try and one retry, then fail: the runner owns retries (0 would mean forever)
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=self._quiet,
        )
        js = nc.jetstream(timeout=self._ack_timeout)
        name = self.destination.nats_stream
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(
                name=name,
                subjects=[f"{self.destination.nats_subject}.>"],
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
        self._nc, self._js = nc, js
        return js

    async def deliver(self, events: Sequence[StreamEvent]) -> None:
        if not events:
            return
        try:
            js = await self._jetstream()
            for event in events:
                await js.publish(
                    self.subject_for(event),
                    orjson.dumps(event.record),
                    timeout=self._ack_timeout,
                    stream=self.destination.nats_stream,
                    headers={"Nats-Msg-Id": str(event.id)},
                )
        except Exception as exc:
            await self.close()
            detail = str(exc) or type(exc).__name__
            if self._last_problem and self._last_problem not in detail:
                detail = f"{detail} ({self._last_problem})"
            self._last_problem = ""
            raise DeliveryError(f"nats {self.destination.name}: {detail}") from exc

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:  # closing a broken connection: nothing left to save
                log.debug("nats %s: close failed: %s", self.destination.name, exc)
