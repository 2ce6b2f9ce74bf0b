"""What every platform router shares on the HTTP side: the error body, documented.

* :class:`ErrorBody` is the JSON every refusal carries (``carelog.web.errors`` writes it), so
  the OpenAPI schema can say so: ``responses=error_responses(404, 409)`` on a route or router.
* :class:`PlatformRoute` turns FastAPI's own ``HTTPException`` (a body that is not UTF-8 is a
  400 raised before any handler runs) into an :class:`ApiError`, so that error has the same
  documented body as every other one instead of ``{"detail": ...}``.
* :data:`PlainText` is a string PostgreSQL can store: text and jsonb columns refuse NUL
  characters, so they are a 422 at the edge instead of a database error (a 500) later.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from carelog.platform.errors import ApiError


class FieldError(BaseModel):
    field: str = Field(description="Dotted location, e.g. body.start_time.")
    reason: str


class ErrorDetail(BaseModel):
    field: str | None = Field(description="Which input is at fault, when one is.")
    reason: str = Field(description="What is wrong, for a human.")
    hint: str | None = Field(description="How to fix it, when we know.")
    code: str | None = Field(default=None, description="Machine-readable, e.g. NOT_FOUND.")
    details: list[FieldError] | None = Field(
        default=None, description="Every invalid field (422 only)."
    )


class ErrorBody(BaseModel):
    """``{"error": {...}}``: the body of every 4xx and 5xx the API answers."""

    error: ErrorDetail


DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (e.g. a body that is not UTF-8 JSON).",
    401: "No valid access token.",
    403: "Not allowed (not an active member, or not the role this needs).",
    404: "No such resource, or not yours.",
    409: "Conflicts with the current state.",
    413: "The request body is larger than the service accepts (refused before parsing).",
    422: "Invalid input: see error.field and error.details.",
    429: "Too many requests from this client or token; retry after the Retry-After seconds.",
    500: "Internal error.",
    503: "The audit trail could not record the action; nothing was done. Retry.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these status codes, each with the :class:`ErrorBody` model."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def described(code: int, description: str) -> dict[int | str, dict[str, Any]]:
    """One error response with its own description (and the :class:`ErrorBody` model)."""
    return {code: {"model": ErrorBody, "description": description}}


#: What any authenticated route may answer besides its own outcomes.
#: Any route may be refused for its body size (413) or by a rate limit (429).
AUTHENTICATED = error_responses(400, 401, 403, 413, 422, 429, 503)
#: What a public route (no token) may answer besides its own outcomes.
PUBLIC = error_responses(400, 413, 422, 429, 503)


class PlatformRoute(APIRoute):
    """An APIRoute whose framework-raised HTTP errors carry the documented error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.headers:
                    raise
                raise ApiError(
                    str(exc.detail), status_code=exc.status_code, code="BAD_REQUEST"
                ) from None

        return route


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return no_surrogates(value)


def no_surrogates(value: str) -> str:
    # JSON may spell an unpaired UTF-16 surrogate ("\ud800"); Python keeps it, but it is not
    # UTF-8, so encrypting, hashing or storing it fails later as a 500.
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("must not contain unpaired surrogate characters (\\ud800-\\udfff)")
    return value


def _storable_json(value: Any) -> Any:
    """Every string inside a JSON value (keys too) must be valid Unicode."""
    if isinstance(value, str):
        no_surrogates(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable_json(key)
            _storable_json(item)
    elif isinstance(value, list):
        for item in value:
            _storable_json(item)
    return value


PlainText = Annotated[str, AfterValidator(_no_nul)]
#: Free text stored encrypted (NUL is fine there) but never a lone surrogate.
UnicodeText = Annotated[str, AfterValidator(no_surrogates)]
#: A JSON object whose strings are all valid Unicode.
StorableJson = Annotated[dict[str, Any], AfterValidator(_storable_json)]
#: The largest PostgreSQL ``integer``: bounds for ids and counters sent by clients.
INT4_MAX = 2_147_483_647
