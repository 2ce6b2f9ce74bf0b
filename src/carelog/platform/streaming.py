"""Streaming response bodies whose producer is never cancelled in the middle of a query.

Starlette cancels the response task when the client hangs up, and keeps cancelling every
await inside its cancelled scope. A body that reads PostgreSQL directly is then interrupted
inside the driver: psycopg's own cancellation of the query is interrupted too, and it closes
the connection, so the unit of work cannot roll back to a savepoint or record the abort. Here
the chunks are produced by a task of their own, one chunk ahead, and the response only waits on
a queue: a hang-up interrupts that wait, then the producer is stopped once (at a chunk boundary
or inside one driver call, which psycopg then cancels cleanly) and closed, shielded and
bounded. The request's unit closes the stream before it ends in every case (even when the
response never started), so a COPY can never outlive the transaction it runs in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, suppress

import anyio

_END = object()


class DecoupledStream:
    """``chunks`` (after ``first``), produced in their own task from construction on."""

    def __init__(
        self, chunks: AsyncGenerator[bytes, None], *, first: bytes, close_seconds: float
    ) -> None:
        self._chunks = chunks
        self._first = first
        self._close_seconds = close_seconds
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
        self._producer = asyncio.get_running_loop().create_task(self._produce())

    async def _produce(self) -> None:
        async with aclosing(self._chunks):
            async for chunk in self._chunks:
                await self._queue.put(chunk)
        await self._queue.put(_END)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            if self._first:
                yield self._first
            while True:
                getter = asyncio.ensure_future(self._queue.get())
                try:
                    await asyncio.wait(
                        {getter, self._producer}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    if not getter.done():
                        getter.cancel()
                if getter.done() and not getter.cancelled():
                    item = getter.result()
                    if item is _END:
                        return
                    assert isinstance(item, bytes)
                    yield item
                elif self._producer.done():
                    self._producer.result()  # the producer's error, raised here
                    return
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the producer (once) and wait for its export to close; shielded, bounded."""
        with anyio.move_on_after(self._close_seconds, shield=True):
            if not self._producer.done():
                self._producer.cancel()
            with suppress(asyncio.CancelledError):
                await self._producer
