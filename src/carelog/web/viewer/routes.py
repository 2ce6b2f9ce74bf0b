"""The audit viewer at ``/audit``: server-rendered pages for an organization's owners and admins.

Same authentication as the JSON API (bearer header or the ``wos-session`` cookie, the request's
unit of work checks the membership), presented for people: an unauthenticated visitor is sent
to the login page, an authenticated non-admin gets a 403 page that says why.

Every page runs one keyset query (one page of events), so it costs the same on the millionth
event as on the first. Reading the trail is itself recorded, as through the API.

No PHI in URLs: links and forms carry only ids (event, actor, data subject, resource) and the
opaque cursors; tokens travel in a POST body and then in an HttpOnly cookie. Every page is sent
with ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer`` and a strict CSP (scripts and
styles from this origin only).
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from carelog.audit import trail_reads
from carelog.audit.catalog import OUTCOMES, AuditCatalog
from carelog.audit.errors import AuditInputError
from carelog.audit.events import MASK_PREFIX
from carelog.audit.query import AuditRecord
from carelog.audit.sealing import ERASED_DISPLAY, erased_subjects, is_sealed, present
from carelog.platform.audit_api import service as audit_reads
from carelog.platform.audit_api.endpoints import export_events
from carelog.platform.auth.cookies import SESSION_COOKIE
from carelog.platform.auth.dependencies import (
    RequestUnit,
    Unit,
    ensure_admin,
    revoke_token,
    token_verifier,
)
from carelog.platform.auth.tokens import TokenError
from carelog.platform.errors import ApiError
from carelog.platform.services import services
from carelog.web.viewer.csrf import check_csrf, csrf_token
from carelog.web.viewer.forms import PAGE_SIZE, parse_filters

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
PARTIAL_HEADER = "x-carelog-partial"
LOGIN_PATH = "/audit/login"
#: Query parameters of the list page, in the order they appear in links (the API's names).
FILTER_FIELDS = (
    "start",
    "end",
    "action",
    "resource_type",
    "resource_id",
    "actor_id",
    "data_subject_id",
    "outcome",
)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


# --------------------------------------------------------------------------- rendering


def _is_masked(value: object) -> bool:
    return isinstance(value, str) and value.startswith(MASK_PREFIX)


def _utc(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = _utc
    env.filters["pretty"] = _pretty
    env.filters["q"] = lambda value: urllib.parse.quote(str(value), safe="")
    env.tests["masked"] = _is_masked
    env.tests["sealed"] = is_sealed
    env.tests["erased"] = lambda value: value == ERASED_DISPLAY
    return env


TEMPLATES = _environment()


def render(
    template: str, status_code: int = 200, headers: Mapping[str, str] | None = None, **ctx: Any
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**ctx)
    return HTMLResponse(
        html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=dict(SECURITY_HEADERS))


def _secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https" or services(request).settings.production


def _to_login(request: Request, *, expired: bool) -> RedirectResponse:
    response = redirect(LOGIN_PATH + ("?expired=1" if expired else ""))
    if expired:
        response.delete_cookie(SESSION_COOKIE, path="/", samesite="strict", httponly=True)
    return response


def _refusal(request: Request, exc: ApiError) -> Response:
    if exc.status_code == 401:
        return _to_login(request, expired=SESSION_COOKIE in request.cookies)
    title = {403: "Access denied", 404: "Not found"}.get(exc.status_code, "Request refused")
    return render(
        "error.html",
        exc.status_code,
        title=title,
        status=exc.status_code,
        message=exc.message,
        hint=exc.hint,
        identity=None,
        csrf_token=csrf_token(request),
    )


class ViewerRoute(APIRoute):
    """Refusals as pages: 401 → the login page, 403/404/… → an HTML page (not JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                if exc.status_code in (401, 403, 404):  # probes of the viewer are evidence too
                    await _record_refusal(request, exc.status_code, exc.code)
                return _refusal(request, exc)

        return guarded


async def _record_refusal(request: Request, status: int, code: str | None) -> None:
    from carelog.web.errors import _record_refusal as record

    await record(request, status, code)


router = APIRouter(route_class=ViewerRoute, include_in_schema=False)
# The viewer's export links: the API's export, reached under the viewer's path because only
# viewer pages accept the session cookie (the JSON API takes bearer tokens).
router.add_api_route("/audit/export", export_events, methods=["GET"])


# --------------------------------------------------------------------------- pages


def _verifications(request: Request) -> dict[uuid.UUID, dict[str, Any]]:
    return services(request).verifications


async def integrity_status(request: Request, unit: RequestUnit) -> dict[str, Any]:
    """The last checkpoint (one index lookup) and the last verification run from this page."""
    status: dict[str, Any] = {"available": True}
    try:
        status["checkpoint"] = await audit_reads.last_checkpoint(unit)
    except sa.exc.DBAPIError:
        return {"available": False}
    status["verification"] = _verifications(request).get(unit.identity.org_id)
    return status


def _catalog(request: Request) -> AuditCatalog:
    return services(request).catalog


async def _chrome(request: Request, unit: RequestUnit) -> dict[str, Any]:
    """What every page shows: who is signed in, for which organization (and the token its
    forms post back)."""
    return {
        "identity": unit.identity,
        "org_name": await audit_reads.org_name(unit),
        "path": request.url.path,
        "csrf_token": csrf_token(request),
    }


def _partial(request: Request) -> bool:
    return request.headers.get(PARTIAL_HEADER) == "1"


# --------------------------------------------------------------------------- login


@router.get(LOGIN_PATH)
async def login_form(request: Request, expired: int = 0) -> HTMLResponse:
    message = "Your session has expired or is not valid; sign in again." if expired else None
    return render("login.html", identity=None, error=message, mode=token_verifier(request).mode)


def _same_origin(request: Request) -> bool:
    """No cross-site sign-in (login CSRF). Browsers send ``Sec-Fetch-Site``; with our
    ``no-referrer`` policy their ``Origin`` is "null", so it only counts when it names a site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host")


@router.post(LOGIN_PATH)
async def login(request: Request) -> Response:
    """A pasted access token (dev or WorkOS), checked, then kept in an HttpOnly cookie."""
    verifier = token_verifier(request)
    if not _same_origin(request):
        return render(
            "login.html", 403, identity=None, error="cross-site sign-in refused", mode=verifier.mode
        )
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    if not token:
        return render(
            "login.html", 400, identity=None, error="paste an access token", mode=verifier.mode
        )
    try:
        claims = await verifier.averify(token)
    except TokenError as exc:
        error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return render("login.html", 401, identity=None, error=error, mode=verifier.mode)
    ttl = int((claims.expires_at - datetime.now(UTC)).total_seconds())
    response = redirect("/audit")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(ttl, 60),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure_cookie(request),
    )
    return response


@router.post("/audit/logout")
async def logout(request: Request) -> Response:
    """Sign out: the token is revoked server-side (a copied cookie stops working too), then
    the cookie is cleared. Needs the form's CSRF token, like every viewer state change."""
    if request.cookies.get(SESSION_COOKIE):
        await check_csrf(request)
        revoke_token(request, request.cookies[SESSION_COOKIE])
    response = redirect(LOGIN_PATH)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure_cookie(request)
    )
    return response


# --------------------------------------------------------------------------- pages


@router.get("/audit")
async def events_page(request: Request, unit: Unit) -> HTMLResponse:
    """The newest events, filtered, one keyset page per request."""
    ensure_admin(unit)
    params = request.query_params
    form = parse_filters(params)
    cursor = params.get("cursor") or None
    before = params.get("before") or None
    page = audit_reads.Page([])
    error = form.error
    if form.filters is not None:
        try:
            page = await audit_reads.browse(unit, form.filters, cursor, before, via="viewer")
        except AuditInputError as exc:
            error = f"{exc.message}. Start again from the newest events."
    catalog = _catalog(request)
    return render(
        "events.html",
        400 if error else 200,
        **await _chrome(request, unit),
        form=form,
        page=page,
        error=error,
        actions=sorted(catalog.actions),
        resource_types=sorted(catalog.resource_types),
        outcomes=OUTCOMES,
        integrity=await integrity_status(request, unit),
        exports=[("jsonl", "JSON Lines"), ("csv", "CSV"), ("workos", "WorkOS JSON")],
    )


@dataclass(frozen=True)
class DiffRow:
    field: str
    before: Any
    after: Any
    change: str  # added | removed | changed | unchanged


def diff_rows(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[DiffRow]:
    old, new = old or {}, new or {}
    rows = []
    for key in sorted({*old, *new}):
        if key not in old:
            change = "added"
        elif key not in new:
            change = "removed"
        elif old[key] != new[key] or _is_masked(new[key]):
            change = "changed"  # two equal masks still mean the field was written
        else:
            change = "unchanged"
        rows.append(DiffRow(key, old.get(key), new.get(key), change))
    return rows


@router.get("/audit/events/{event_id}")
async def event_page(request: Request, unit: Unit, event_id: str) -> HTMLResponse:
    """One event: context, changes as a before/after table, metadata."""
    ensure_admin(unit)
    event = await audit_reads.event(unit, event_id, via="viewer")
    gone = await erased_subjects(unit.session, unit.identity.org_id, [event.data_subject_id])
    event = dataclasses.replace(
        event,
        old_values=present(event.old_values, bool(gone)),
        new_values=present(event.new_values, bool(gone)),
        metadata=present(event.metadata, bool(gone)),
    )
    ctx: dict[str, Any] = {
        "event": event,
        "diff": diff_rows(event.old_values, event.new_values),
        "spec": _catalog(request).actions.get(event.action),
    }
    if _partial(request):
        return render("_detail.html", headers={"Vary": PARTIAL_HEADER}, **ctx, partial=True)
    return render(
        "event.html", headers={"Vary": PARTIAL_HEADER}, **await _chrome(request, unit), **ctx
    )


@router.get("/audit/subjects/{subject_id:path}")
async def subject_page(request: Request, unit: Unit, subject_id: str) -> HTMLResponse:
    """Who accessed (or tried to) one data subject's records, newest first, paged."""
    ensure_admin(unit)
    cursor = request.query_params.get("cursor") or None
    error = None
    entries: list[AuditRecord] = []
    older: str | None = None
    try:
        page = await audit_reads.subject_accesses(unit, subject_id, cursor, PAGE_SIZE, via="viewer")
    except AuditInputError as exc:
        error = exc.message
    else:
        entries, older = page.items, page.next_cursor
    phi = set(_catalog(request).phi_actions())
    export = urllib.parse.urlencode({"format": "csv", "data_subject_id": subject_id})
    return render(
        "subject.html",
        400 if error else 200,
        **await _chrome(request, unit),
        subject=subject_id,
        entries=entries,
        actors=_distinct(e.workos_user_id for e in entries),
        phi=phi,
        older=older,
        paged=bool(cursor),
        error=error,
        export_query=export,
    )


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


@router.post("/audit/integrity/verify")
async def verify_integrity(request: Request, unit: Unit) -> Response:
    """Recompute the org's tree now (on demand: it reads every event) and keep the result."""
    await check_csrf(request)
    ensure_admin(unit)
    from carelog.audit.integrity.verify import verify_org

    keyring = services(request).verifying_keys
    report = await verify_org(unit.session, unit.identity.org_id, keyring)
    problem = report.first_problem
    _verifications(request)[unit.identity.org_id] = {
        "ok": report.ok,
        "at": datetime.now(UTC),
        "leaves": report.leaves,
        "events_checked": report.events_checked,
        "checkpoints": report.checkpoints,
        "pending": report.pending,
        "seconds": report.seconds,
        "problem": None if problem is None else problem.message,
    }
    await trail_reads.record_verification(report.ok, via="viewer")
    return redirect("/audit#integrity")
