"""The FastAPI application: one process-wide database, health first, surfaces added per domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from carelog import __version__
from carelog.db.engine import Database
from carelog.db.session import Scopes


def create_app(database: Database) -> FastAPI:
    scopes = Scopes(database)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await database.dispose()

    app = FastAPI(title="carelog", version=__version__, lifespan=lifespan)
    app.state.scopes = scopes

    @app.get("/health", tags=["ops"], summary="Liveness and database reachability")
    async def health() -> Any:
        """Answers 200 only when the runtime role can run a query (not just when we are up)."""
        try:
            async with scopes.public_scope() as session:
                await session.execute(sa.text("select 1"))
        except Exception as exc:  # health must report, never raise
            return JSONResponse(
                status_code=503,
                content={"status": "unavailable", "database": type(exc).__name__},
            )
        return {"status": "ok", "database": "ok", "version": __version__}

    return app
