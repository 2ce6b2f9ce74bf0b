"""The audit viewer in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The app is served by uvicorn on 127.0.0.1 (a free port, in a background thread) against a
fresh database with the two-tenant world, a few hundred events and a signed checkpoint. The
tests sign in with development tokens through the login page, filter, page both ways, open an
event in the side panel, export, look at a patient's access history, check that another org's
admin sees none of it and that a plain member gets the 403 page, and drive the filters by
keyboard only.

Screenshots of the main views go to ``docs/img/`` when they are missing or when
``CARELOG_UPDATE_SCREENSHOTS=1`` (so normal runs never rewrite them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_viewer_http import seed_events

from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform.auth.tokens import DevTokenSigner
from carelog.runtime import Runtime
from carelog.web.app import create_app
from dbtools import TestServer
from serving import served_in_thread
from world import World, build_world

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

CHROMIUM = os.environ.get("CARELOG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
N_EVENTS = 300
WINDOW = "start=2024-03-01&end=2024-03-01"  # the seeded day: the viewer's own events stay out

pytestmark = pytest.mark.skipif(
    sync_playwright is None or not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)),
    reason=(
        "browser tests need Playwright's Python package (pip install playwright; no browser "
        f"download) and Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
)


@dataclass
class Site:
    url: str
    world: World
    signer: DevTokenSigner
    ids: list[uuid.UUID]

    def token(self, user: str, org: object) -> str:
        return self.signer.issue(user, str(org), role="member", ttl=3600)


def _seal(db: Database) -> None:
    """One sealer pass, so the page has a signed checkpoint to show (own loop, own thread)."""
    from carelog.audit.integrity.keys import load_signing_keyring
    from carelog.audit.integrity.sealer import Sealer

    async def run() -> None:
        try:
            await Sealer(Scopes(db), load_signing_keyring(db.settings)).seal_once()
        finally:
            await db.dispose()

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def site(
    pg: TestServer, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    name = pg.create_database(template=template_db)
    db = pg.database(name)
    world = build_world(db.sync_engine("admin"))
    with db.sync_engine("admin").begin() as conn:
        # The world's placeholder seals and checkpoint are not real: start the tree afresh.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table in ("audit_checkpoints", "audit_seals", "audit_seal_state"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    ids = seed_events(db, world, N_EVENTS)
    _seal(db)
    signer = DevTokenSigner(os.urandom(32))
    runtime = Runtime(
        db.settings,
        db,
        spool_dir=tmp_path_factory.mktemp("viewer") / "spool",
        token_verifier=signer,
    )
    try:
        with served_in_thread(create_app(runtime)) as url:
            yield Site(url, world, signer, ids)
    finally:
        db.close()
        pg.drop_database(name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    context = browser.new_context(
        base_url=site.url, viewport={"width": 1366, "height": 768}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "403" not in msg.text and "404" not in msg.text
            else None
        ),
    )
    yield page
    context.close()
    assert not errors, errors  # no script errors, no CSP violations


def login(page: Page, site: Site, user: str, org: object) -> None:
    page.goto("/audit")
    expect(page).to_have_url(f"{site.url}/audit/login")
    page.get_by_label("Access token").fill(site.token(user, org))
    page.get_by_role("button", name="Sign in").click()


def screenshot(page: Page, name: str) -> None:
    path = SCREENSHOTS / name
    if os.environ.get("CARELOG_UPDATE_SCREENSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))


def shown_ids(page: Page) -> list[str]:
    hrefs = page.locator("table.events tbody a[data-detail]").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    return [h.rsplit("/", 1)[1] for h in hrefs]


def test_admin_filters_pages_opens_and_exports(page: Page, site: Site) -> None:
    a = site.world.a
    login(page, site, a.owner, a.org_id)
    expect(page).to_have_url(f"{site.url}/audit")
    expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()
    expect(page.locator("#integrity")).to_contain_text("Last checkpoint")
    # The signed checkpoint verifies.
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#integrity .badge.ok")).to_have_text("Verified")

    # Filter: the seeded day, one action (the select lists the catalog).
    page.get_by_label("From (UTC)").fill("2024-03-01")
    page.get_by_label("To (UTC, inclusive)").fill("2024-03-01")
    page.get_by_label("Action").select_option("PROFILE_UPDATED")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(
        f"{site.url}/audit?start=2024-03-01&end=2024-03-01&action=PROFILE_UPDATED"
    )  # empty fields are not sent
    ids = shown_ids(page)
    assert len(ids) == 50
    actions = page.locator("table.events tbody tr td:nth-child(2)").all_inner_texts()
    assert set(actions) == {"PROFILE_UPDATED"}
    expected = [str(i) for k, i in reversed(list(enumerate(site.ids))) if k % 3 == 1]
    assert ids == expected[:50]

    # Page older, then newer again.
    page.get_by_role("link", name="Older →").click()
    assert shown_ids(page) == expected[50:100]
    page.get_by_role("link", name="← Newer").click()
    assert shown_ids(page) == expected[:50]
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

    # No filters but the day: the main list, for the README.
    page.goto(f"/audit?{WINDOW}")
    expect(page.locator("table.events tbody tr")).to_have_count(50)
    screenshot(page, "audit-list.png")

    # Open an event (i = 298: PROFILE_UPDATED with masked changes) in the side panel.
    link = page.locator(f'a[href="/audit/events/{site.ids[298]}"]')
    link.click()
    panel = page.locator("#detail-panel")
    expect(panel).to_be_visible()
    title = panel.get_by_role("heading", name="PROFILE_UPDATED")
    expect(title).to_be_focused()
    expect(panel.locator("dl.context")).to_contain_text("203.0.113.9")
    expect(panel.locator("dl.context")).to_contain_text("req-298")
    expect(panel.locator("table.diff .badge.masked")).to_have_count(2)
    expect(panel.locator("tr.change-changed", has_text="first_name")).to_contain_text("Anna")
    expect(panel.locator("pre.metadata")).to_contain_text('"i": 298')
    screenshot(page, "audit-detail.png")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(link).to_be_focused()

    # The same event as a page of its own.
    page.goto(f"/audit/events/{site.ids[298]}")
    expect(page.locator("dl.context")).to_contain_text(a.member)

    # Export what the list shows (CSV and WorkOS JSON), through the session cookie.
    page.goto(f"/audit?{WINDOW}&outcome=denied")
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV").click()
    download = info.value
    assert download.suggested_filename == "audit-log.csv"
    lines = Path(download.path()).read_text().strip().splitlines()
    assert len(lines) == 1 + N_EVENTS // 10
    assert all("denied" in line for line in lines[1:])
    with page.expect_download() as info:
        page.get_by_role("link", name="WorkOS JSON").click()
    body = json.loads(Path(info.value.path()).read_text())
    assert body  # a WorkOS-shaped document of the same events
    assert str(site.world.b.org_id) not in json.dumps(body)


def test_patient_access_view(page: Page, site: Site) -> None:
    a = site.world.a
    login(page, site, a.owner, a.org_id)
    page.goto(f"/audit?{WINDOW}")
    page.locator("table.events tbody a", has_text=a.patient).first.click()
    expect(page).to_have_url(f"{site.url}/audit/subjects/{a.patient}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(a.patient)
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.filter(has_text="MEDICAL_RECORD_VIEWED")).not_to_have_count(0)
    screenshot(page, "audit-subject.png")
    page.get_by_role("link", name="Older →").click()
    expect(rows).to_have_count(50)
    with page.expect_download() as info:
        page.get_by_role("link", name="Export (CSV)").click()
    lines = Path(info.value.path()).read_text().strip().splitlines()
    reads = [line for line in lines if "MEDICAL_RECORD_VIEWED" in line]
    assert len(reads) == N_EVENTS // 3


def test_accounting_of_disclosures_document(page: Page, site: Site) -> None:
    """The printable HIPAA/GDPR accounting a clinic hands to its patient, from their page."""
    a = site.world.a
    login(page, site, a.owner, a.org_id)
    page.goto(f"/audit/subjects/{a.patient}")
    page.get_by_role("link", name="Accounting of disclosures (printable)").click()
    expect(page).to_have_url(f"{site.url}/audit/subjects/{a.patient}/accounting")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Accounting of disclosures and access to your health information"
    )
    disclosures = page.locator("section", has_text="Disclosures outside").locator("tbody tr")
    expect(disclosures).to_have_count(1)
    expect(disclosures).to_contain_text("Health authority")
    access = page.locator("section", has_text="Who accessed").locator("tbody tr")
    expect(access.filter(has_text="clinical record(s) viewed").first).to_be_visible()
    expect(access.filter(has_text="Ex a").first).to_contain_text("expert (member)")
    expect(access.filter(has_text="treatment").first).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("main.doc")).to_be_visible()
    page.emulate_media(media="screen")
    screenshot(page, "subject-accounting.png")


def test_other_org_admin_sees_none_of_it(page: Page, site: Site) -> None:
    a, b = site.world.a, site.world.b
    login(page, site, b.owner, b.org_id)
    page.goto("/audit?start=2024-03-01&end=2024-03-31")
    assert len(shown_ids(page)) == 5
    text = page.locator("main").inner_text()
    for secret in (a.member, a.expert, a.patient, str(a.org_id), "res-1"):
        assert secret not in text
    response = page.goto(f"/audit/events/{site.ids[0]}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("Not found")
    page.goto(f"/audit/subjects/{a.patient}")
    expect(page.locator("table.events")).to_contain_text("No recorded access")
    page.goto(f"/audit?start=2024-03-01&end=2024-03-31&actor_id={a.member}")
    expect(page.locator("table.events")).to_contain_text("No events match")
    page.goto("/audit?start=2024-03-01&end=2024-03-31")
    with page.expect_download() as info:
        page.get_by_role("link", name="JSON Lines").click()
    exported = [json.loads(line) for line in Path(info.value.path()).read_text().splitlines()]
    assert len(exported) == 5
    assert {e["org_id"] for e in exported} == {str(b.org_id)}


def test_member_gets_the_403_page(page: Page, site: Site) -> None:
    a = site.world.a
    login(page, site, a.member, a.org_id)
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("403 · Access denied")
    expect(page.get_by_role("alert")).to_contain_text("only owners and admins")
    assert a.patient not in page.content()
    # Signing in as someone else is one button away.
    page.get_by_role("button", name="Sign in with another account").click()
    expect(page).to_have_url(f"{site.url}/audit/login")


def test_keyboard_only(page: Page, site: Site) -> None:
    a = site.world.a
    login(page, site, a.owner, a.org_id)
    page.goto(f"/audit?{WINDOW}")
    # The first Tab reaches the skip link; Enter moves focus to the main content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Tab on to the actor field (date inputs have one stop per part), showing the focus.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "f-actor":
            break
    else:
        pytest.fail("Tab never reached the actor filter")
    outline: Any = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.type(a.expert)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{site.url}/audit?{WINDOW}&actor_id={a.expert}")
    actors = page.locator("table.events tbody tr td:nth-child(3)").all_inner_texts()
    assert actors and set(actors) == {a.expert}
    # Every form control has a label; the table has a caption and scoped headers.
    unlabeled = page.evaluate(
        "[...document.querySelectorAll('input, select, textarea')]"
        ".filter(el => el.type !== 'hidden' && el.labels.length === 0).map(el => el.name)"
    )
    assert unlabeled == []
    assert page.locator("table.events caption").count() == 1
    assert page.locator("table.events thead th:not([scope='col'])").count() == 0
    # Open an event with Enter, close it with Escape.
    page.locator("a[data-detail]").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-panel h2")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("a[data-detail]").first).to_be_focused()
