"""The printable accounting document in the viewer: /audit/subjects/{id}/accounting.

Its own router, mounted before the viewer's ``/audit/subjects/{id:path}`` page (which would
otherwise take the ``/accounting`` suffix as part of the subject id).
"""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from carelog.platform.auth.dependencies import Unit, ensure_admin
from carelog.platform.services import services
from carelog.platform.subjects.accounting import Accounting
from carelog.platform.subjects.schemas import SubjectId
from carelog.platform.subjects.service import generate_accounting
from carelog.web.viewer.routes import TEMPLATES, ViewerRoute, render

router = APIRouter(route_class=ViewerRoute, include_in_schema=False)


@router.get("/audit/subjects/{subject_id}/accounting")
async def accounting_page(request: Request, unit: Unit, subject_id: SubjectId) -> HTMLResponse:
    ensure_admin(unit)
    catalog = services(request).catalog
    result = await generate_accounting(unit, catalog, subject_id, via="viewer")
    return render("accounting.html", a=asdict(result), inline_css=None)


def accounting_html(result: Accounting) -> str:
    """The same document as one self-contained file (CLI ``--format html``)."""
    css = resources.files("carelog.web").joinpath("static", "accounting.css").read_text()
    return TEMPLATES.get_template("accounting.html").render(a=asdict(result), inline_css=css)
