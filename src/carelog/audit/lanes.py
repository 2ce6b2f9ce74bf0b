"""One autocommit connection per writer lane, opened lazily and dropped on any failure."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg


class LaneConnections:
    """The writer's connections. Autocommit: each insert is one statement, one round trip and
    its own transaction; ``execute`` returns after ReadyForQuery, i.e. after the commit."""

    def __init__(self, conninfo: str, lanes: int, connect_timeout: float) -> None:
        self.conninfo = conninfo
        self.connect_timeout = connect_timeout
        self._conns: list[psycopg.AsyncConnection[Any] | None] = [None] * lanes

    async def get(self, lane: int) -> psycopg.AsyncConnection[Any]:
        conn = self._conns[lane]
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self.conninfo, connect_timeout=max(1, int(self.connect_timeout)), autocommit=True
            )
            self._conns[lane] = conn
        return conn

    async def close(self, lane: int) -> None:
        conn, self._conns[lane] = self._conns[lane], None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=1)

    async def close_all(self) -> None:
        for lane in range(len(self._conns)):
            await self.close(lane)
