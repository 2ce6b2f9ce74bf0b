"""Errors as JSON a client can act on: which field, why, how to fix. Never a stack trace."""

from __future__ import annotations

import logging

import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from carelog.audit.errors import AuditUnavailableError, MissingAuditContextError
from carelog.core.errors import CarelogError
from carelog.web.outage import (
    CONNECTION_ERRORS,
    RETRY_AFTER_SECONDS,
    DatabaseState,
    is_connection_failure,
)

log = logging.getLogger("carelog.web")


def error_body(
    reason: str, *, field: str | None = None, hint: str | None = None
) -> dict[str, object]:
    return {"error": {"field": field, "reason": reason, "hint": hint}}


def unavailable(state: DatabaseState, exc: Exception) -> JSONResponse:
    state.failed(exc)
    return JSONResponse(
        status_code=503,
        content=error_body(
            "the database is unavailable",
            hint=f"retry after {RETRY_AFTER_SECONDS} s; the operators have been alerted",
        ),
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def install_error_handlers(app: FastAPI, state: DatabaseState | None = None) -> None:
    outage = state or DatabaseState()
    app.state.database_state = outage

    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        return unavailable(outage, exc)

    for kind in CONNECTION_ERRORS:
        app.add_exception_handler(kind, database_unavailable)

    @app.exception_handler(sa_exc.DBAPIError)
    async def dbapi_error(request: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
        if is_connection_failure(exc):
            return unavailable(outage, exc)
        log.error("database error: %s", type(exc.orig).__name__, exc_info=exc)
        return JSONResponse(status_code=500, content=error_body("internal error"))

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()))
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg")}
            for e in errors
        ]
        body = error_body(str(first.get("msg")), field=field or None)
        body["error"]["details"] = details  # type: ignore[index]
        return JSONResponse(status_code=422, content=body)

    @app.exception_handler(AuditUnavailableError)
    async def audit_unavailable(_: Request, exc: AuditUnavailableError) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content=error_body(exc.message, hint=exc.hint),
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    @app.exception_handler(MissingAuditContextError)
    async def missing_context(_: Request, exc: MissingAuditContextError) -> JSONResponse:
        log.error("audit context missing in a request handler")
        return JSONResponse(status_code=500, content=error_body("internal error"))

    @app.exception_handler(CarelogError)
    async def carelog_error(_: Request, exc: CarelogError) -> JSONResponse:
        # Domain errors (carelog.platform.errors.ApiError) carry their status and a code.
        body = error_body(exc.message, field=exc.field, hint=exc.hint)
        code = getattr(exc, "code", None)
        if code:
            body["error"]["code"] = code  # type: ignore[index]
        return JSONResponse(status_code=getattr(exc, "status_code", 400), content=body)
