"""Errors as JSON a client can act on: which field, why, how to fix. Never a stack trace.

:data:`ERROR_MAP` is the one place an exception type becomes an HTTP status: a handler looks
the exception's class (or its nearest mapped base) up there, and every answer carries the one
body, :class:`carelog.platform.http.ErrorBody`. Domain refusals
(:class:`~carelog.platform.errors.ApiError`) bring their own status and code. A lost
database is not a carelog error but an outage: those handlers (``carelog.web.outage``) answer
503 with the same body and record the outage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from carelog.audit.errors import AuditInputError, AuditUnavailableError, MissingAuditContextError
from carelog.core.errors import CarelogError
from carelog.platform.errors import ApiError
from carelog.platform.http import ErrorBody, ErrorDetail, FieldError
from carelog.web.outage import (
    CONNECTION_ERRORS,
    RETRY_AFTER_SECONDS,
    DatabaseState,
    is_connection_failure,
)

log = logging.getLogger("carelog.web")


@dataclass(frozen=True)
class ErrorMapping:
    """How one kind of failure is answered."""

    status: int
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Replace the message (it describes our bug, not the client's input) and log it.
    internal: bool = False


ERROR_MAP: dict[type[CarelogError], ErrorMapping] = {
    ApiError: ErrorMapping(400),  # the instance's own status_code and code win
    AuditInputError: ErrorMapping(422, "INVALID_INPUT"),
    AuditUnavailableError: ErrorMapping(503, headers={"Retry-After": RETRY_AFTER_SECONDS}),
    MissingAuditContextError: ErrorMapping(500, internal=True),
    CarelogError: ErrorMapping(400),
}


def mapping_for(exc: CarelogError) -> ErrorMapping:
    """The entry of the exception's class, or of its nearest mapped base class."""
    for cls in type(exc).__mro__:
        found = ERROR_MAP.get(cls)
        if found is not None:
            return found
    return ERROR_MAP[CarelogError]


def error_response(
    status: int,
    reason: str,
    *,
    field: str | None = None,
    hint: str | None = None,
    code: str | None = None,
    details: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error body (``{"error": {...}}``) with this status."""
    body = ErrorBody(
        error=ErrorDetail(field=field, reason=reason, hint=hint, code=code, details=details)
    )
    return JSONResponse(
        status_code=status, content=body.model_dump(exclude_defaults=True), headers=headers
    )


def answer(exc: CarelogError) -> JSONResponse:
    """The response for a carelog error, by :data:`ERROR_MAP`."""
    mapping = mapping_for(exc)
    if mapping.internal:
        log.error("%s in a request handler", type(exc).__name__)
        return error_response(mapping.status, "internal error", headers=mapping.headers)
    status, code = mapping.status, mapping.code
    if isinstance(exc, ApiError):
        status, code = exc.status_code, exc.code
    return error_response(
        status, exc.message, field=exc.field, hint=exc.hint, code=code, headers=mapping.headers
    )


def unavailable(state: DatabaseState, exc: Exception) -> JSONResponse:
    state.failed(exc)
    return error_response(
        503,
        "the database is unavailable",
        hint=f"retry after {RETRY_AFTER_SECONDS} s; the operators have been alerted",
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
        return error_response(500, "internal error")

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        details = [
            FieldError(field=".".join(str(p) for p in e.get("loc", ())), reason=str(e.get("msg")))
            for e in errors
        ]
        return error_response(422, str(first.get("msg")), field=where or None, details=details)

    @app.exception_handler(CarelogError)
    async def carelog_error(request: Request, exc: CarelogError) -> JSONResponse:
        status = exc.status_code if isinstance(exc, ApiError) else mapping_for(exc).status
        retry = getattr(exc, "retry_after", None)
        if status in (401, 403, 404):
            retry = await _record_refusal(request, status, getattr(exc, "code", None))
            if retry is not None:  # over the failure limit: 429, and nothing more recorded
                return error_response(
                    429,
                    "too many failed attempts",
                    hint=f"wait {retry} s (Retry-After)",
                    code="RATE_LIMITED",
                    headers={"Retry-After": str(retry)},
                )
        response = answer(exc)
        if retry is not None:
            response.headers["Retry-After"] = str(retry)
        return response


async def _record_refusal(request: Request, status: int, code: str | None) -> int | None:
    """Refusals are recorded (carelog.platform.refusals); recording never turns a refusal
    into a 500, so a failure here is logged and the refusal answered as it was."""
    from carelog.platform.refusals import record_refusal

    try:
        return await record_refusal(request, status, code)
    except Exception as exc:
        log.error("refusal not recorded: %s", exc, extra={"error": type(exc).__name__})
        return None
