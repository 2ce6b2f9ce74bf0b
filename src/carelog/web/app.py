"""The FastAPI application: one database, one audit service, the platform's routers.

Every request gets an audit context from the middleware (client address through trusted proxies
only, user agent, request id); authentication then binds the actor and organization, and the
request's unit of work carries the same identity into PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from carelog import __version__
from carelog.audit import AuditContextMiddleware, TrustedProxies, configure_audit
from carelog.audit.api import AuditService
from carelog.audit.integrity.sealer import background_sealer
from carelog.audit.setup import create_audit_service
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform.audit_catalog import build_catalog
from carelog.platform.routers import ROUTERS
from carelog.web.errors import install_error_handlers
from carelog.web.viewer import STATIC_DIR
from carelog.web.viewer import router as viewer_router


def create_app(
    database: Database, *, audit: AuditService | None = None, sealer: bool = False
) -> FastAPI:
    """The service. ``sealer=True`` (``carelog up``) also seals the audit log in the background;
    tests leave it off and seal on demand, so no background task races their assertions."""
    scopes = Scopes(database)
    service = audit or create_audit_service(database, build_catalog())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_audit(service)
        await service.start()
        try:
            if sealer:
                async with background_sealer(scopes, database.settings) as running:
                    app.state.sealer = running
                    yield
            else:
                yield
        finally:
            await service.stop()
            configure_audit(None)
            await database.dispose()

    app = FastAPI(
        title="carelog",
        version=__version__,
        lifespan=lifespan,
        description="Care platform API with a compliance-grade audit log.",
    )
    app.state.database = database
    app.state.scopes = scopes
    app.state.audit = service
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(viewer_router)  # the audit viewer's pages at /audit
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health", tags=["ops"], summary="Liveness: the process serves requests")
    async def health() -> Any:
        """Liveness only: no I/O, so a load balancer's or orchestrator's frequent probe costs
        next to nothing and a slow database never gets a healthy process restarted. Whether
        the database answers is ``/ready``'s question."""
        writer = service.writer.stats
        return {
            "status": "ok",
            "version": __version__,
            "audit": {"circuit_open": writer.circuit_open, "spooled": writer.spooled},
        }

    @app.get("/ready", tags=["ops"], summary="Readiness: the runtime role can run a query")
    async def ready() -> Any:
        """Answers 200 only when the runtime role can run a query (not just when we are up)."""
        try:
            async with scopes.public_scope() as session:
                await session.execute(sa.text("select 1"))
        except Exception as exc:  # readiness must report, never raise
            return JSONResponse(
                status_code=503,
                content={"status": "unavailable", "database": type(exc).__name__},
            )
        writer = service.writer.stats
        return {
            "status": "ok",
            "database": "ok",
            "version": __version__,
            "audit": {"circuit_open": writer.circuit_open, "spooled": writer.spooled},
        }

    proxies = TrustedProxies.parse(os.environ.get("CARELOG_TRUSTED_PROXIES", ""))
    app.add_middleware(AuditContextMiddleware, trusted_proxies=proxies)
    return app
