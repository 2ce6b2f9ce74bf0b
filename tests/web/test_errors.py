"""One error table, one error body: every carelog error type maps to a status through
``ERROR_MAP`` and answers with the documented ``ErrorBody``."""

from __future__ import annotations

import json

from carelog.audit.errors import AuditInputError, AuditUnavailableError, MissingAuditContextError
from carelog.core.errors import CarelogError, ConfigurationError
from carelog.platform.errors import ApiError, not_found
from carelog.platform.http import ErrorBody
from carelog.web.errors import ERROR_MAP, answer, mapping_for


def _body(exc: CarelogError) -> tuple[int, dict[str, object], dict[str, str]]:
    response = answer(exc)
    return response.status_code, json.loads(bytes(response.body)), dict(response.headers)


def test_each_kind_of_error_has_one_status() -> None:
    assert _body(AuditInputError("bad filter", field="start", hint="aware"))[0] == 422
    status, body, headers = _body(AuditUnavailableError("no storage", hint="retry"))
    assert status == 503 and headers["retry-after"] == "5"
    status, body, _ = _body(MissingAuditContextError("no context"))
    assert status == 500 and body["error"]["reason"] == "internal error"  # type: ignore[index]
    assert _body(ConfigurationError("x"))[0] == 400
    status, body, _ = _body(not_found("meeting"))
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"  # type: ignore[index]
    assert _body(ApiError("gone", status_code=409, code="GONE"))[0] == 409


def test_subclasses_use_their_nearest_mapped_base() -> None:
    class OddInputError(AuditInputError):
        pass

    assert mapping_for(OddInputError("x")) is ERROR_MAP[AuditInputError]
    assert mapping_for(CarelogError("x")) is ERROR_MAP[CarelogError]


def test_every_body_is_the_documented_error_body() -> None:
    for exc in (
        AuditInputError("bad", field="f", hint="h"),
        AuditUnavailableError("down"),
        ApiError("no", status_code=403, code="FORBIDDEN"),
        CarelogError("plain"),
    ):
        _, body, _ = _body(exc)
        ErrorBody.model_validate(body)
        assert set(body["error"]) >= {"field", "reason", "hint"}  # type: ignore[arg-type]
