"""The yardstick of ``carelog bench http``: the least a FastAPI service on this stack can do.

Two routes on FastAPI + uvicorn, nothing else (no middleware, no authentication, no ORM):

- ``GET /hello``: a constant JSON body (the framework's own pace);
- ``GET /tx``: one transaction on a psycopg pool *as the app role*, setting the same RLS
  context carelog sets (``set_config('app.user_id'…, true), set_config('app.org_id'…, true)``)
  and running ``SELECT 1``: the framework plus the minimum one tenant-scoped round trip costs.

Run as its own process by the benchmark (``python -m carelog.bench.http_baseline``), on the
same machine and in the same run as the service, so both see the same load. Against a service
with N workers the benchmark starts N of these on one port (``SO_REUSEPORT``: the kernel spreads
the connections), so the baseline gets the same cores the service gets.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

_SET_CONTEXT = "SELECT set_config('app.user_id', %s, true), set_config('app.org_id', %s, true)"


def create_baseline(conninfo: str, user_id: str, org_id: str, pool_size: int = 10) -> FastAPI:
    pool = AsyncConnectionPool(conninfo, min_size=pool_size, max_size=pool_size, open=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/hello")
    async def hello() -> dict[str, Any]:
        return {"hello": "world"}

    @app.get("/tx")
    async def tx() -> dict[str, Any]:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(_SET_CONTEXT, (user_id, org_id))
            cur = await conn.execute("SELECT 1")
            row = await cur.fetchone()
        return {"one": row[0] if row else None}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conninfo", required=True, help="libpq string of the app role")
    parser.add_argument("--user", required=True)
    parser.add_argument("--org", required=True)
    args = parser.parse_args(argv)
    app = create_baseline(args.conninfo, args.user, args.org)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # one port, several processes
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
