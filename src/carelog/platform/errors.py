"""Domain errors with an HTTP status, so services can refuse without knowing about HTTP.

They are :class:`CarelogError` subclasses: the web layer turns them into the usual JSON body
(``field``, ``reason``, ``hint``, and a machine-readable ``code``) with ``status_code``.
"""

from __future__ import annotations

from carelog.core.errors import CarelogError


class ApiError(CarelogError):
    """A refusal a client can act on (404, 409, 403...), never a stack trace."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 400,
        code: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, field=field, hint=hint)
        self.status_code = status_code
        self.code = code


def not_found(what: str, field: str | None = "id") -> ApiError:
    """404 for 'absent' and 'not yours' alike, so ids of other tenants leak nothing."""
    return ApiError(f"{what} not found", status_code=404, code="NOT_FOUND", field=field)


def conflict(
    message: str, code: str, *, field: str | None = None, hint: str | None = None
) -> ApiError:
    return ApiError(message, status_code=409, code=code, field=field, hint=hint)


def forbidden(message: str, *, hint: str | None = None) -> ApiError:
    return ApiError(message, status_code=403, code="FORBIDDEN", hint=hint)
