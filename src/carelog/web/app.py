"""The FastAPI application over one :class:`~carelog.runtime.Runtime`.

Every request gets an audit context from the middleware (client address through trusted proxies
only, user agent, request id); authentication then binds the actor and organization, and the
request's unit of work carries the same identity into PostgreSQL. The app builds nothing itself:
its services come from the runtime it is given (``app.state.runtime``).
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from carelog import __version__
from carelog.audit import AuditContextMiddleware
from carelog.platform.routers import ROUTERS
from carelog.runtime import Runtime
from carelog.web.errors import install_error_handlers
from carelog.web.hardening import HardeningMiddleware
from carelog.web.viewer import STATIC_DIR
from carelog.web.viewer import router as viewer_router
from carelog.web.viewer.accounting import router as accounting_router


def create_app(runtime: Runtime, *, sealer: bool = False, freeze_heap: bool = False) -> FastAPI:
    """The service. ``sealer=True`` (``carelog up``) also seals the audit log in the background;
    tests leave it off and seal on demand, so no background task races their assertions.

    ``freeze_heap=True`` (``carelog up`` and its workers) moves everything alive once the
    service has started (modules, routes, models, pools: ~160,000 objects) out of the garbage
    collector's reach with ``gc.freeze()``: they live as long as the process, and a full
    collection no longer walks them, which took 120-160 ms here each time, in the middle of
    whichever requests were running."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.started(sealer=sealer):
            if freeze_heap:
                gc.collect()
                gc.freeze()
            yield

    app = FastAPI(
        title="carelog",
        version=__version__,
        lifespan=lifespan,
        description="Care platform API with a compliance-grade audit log.",
        # The interactive docs load Swagger UI/ReDoc from a CDN: not in production.
        docs_url=None if runtime.settings.production else "/docs",
        redoc_url=None if runtime.settings.production else "/redoc",
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.state.database_state.watch(runtime.database)

    @app.get("/health", tags=["ops"], summary="Liveness: the process serves requests")
    async def health() -> Any:
        """Liveness only: no I/O, so a load balancer's or orchestrator's frequent probe costs
        next to nothing and a slow database never gets a healthy process restarted. Whether
        the database answers is ``/ready``'s question. Still 200 when the audit writer is
        degraded (spooling, refusing, quarantined lines): restarting would not help, but the
        status says so instead of ``ok``."""
        audit = runtime.audit.writer.health()
        if runtime.leadership is not None:  # which worker answered, and whether it leads
            audit = {**audit, "leader": runtime.leadership.is_leader, "pid": os.getpid()}
        return {"status": _status(audit), "version": __version__, "audit": audit}

    @app.get("/ready", tags=["ops"], summary="Readiness: the runtime role can run a query")
    async def ready() -> Any:
        """Answers 200 only when the runtime role can run a query (not just when we are up) and
        the audit writer can acknowledge events; 503 otherwise (send traffic elsewhere)."""
        audit = runtime.audit.writer.health()
        try:
            async with runtime.scopes.public_scope() as session:
                await session.execute(sa.text("select 1"))
        except Exception as exc:  # readiness must report, never raise
            return JSONResponse(
                status_code=503,
                content={
                    "status": "unavailable",
                    "database": type(exc).__name__,
                    "version": __version__,
                    "audit": audit,
                },
            )
        body = {"status": _status(audit), "database": "ok", "version": __version__, "audit": audit}
        return JSONResponse(status_code=503 if audit["state"] == "refusing" else 200, content=body)

    # After the probes, which are matched first: an orchestrator calls them most often.
    # The accounting page before the viewer's /audit/subjects/{id:path}.
    add_routes(app, [*ROUTERS, accounting_router, viewer_router])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(AuditContextMiddleware, trusted_proxies=runtime.trusted_proxies)
    app.add_middleware(HardeningMiddleware)
    return app


def add_routes(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """The routers' routes on the app's own router, in order, instead of ``include_router``.

    FastAPI (0.16x) matches an included router's routes through a layer of its own on every
    request (each inclusion re-reads its routes' version, then matches its routes twice: once
    to answer whether it matches, once to pick the route); a request to the last of the
    service's 40 routes spent 176 us of CPU in dispatch against 128 us with the same routes on
    the app's router and 80 us in a bare app. Each route already carries its router's prefix,
    tags, responses and route class, so the OpenAPI document is the same (a test compares)."""
    for router in routers:
        app.router.routes.extend(router.routes)


def _status(audit: dict[str, Any]) -> str:
    """``ok`` only when the writer commits directly and nothing waits in its quarantine."""
    return "ok" if audit["state"] == "ok" and not audit["quarantined"] else "degraded"
