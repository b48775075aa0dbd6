"""The admin's screens on the lab monitors (1024x768 and 1366x768) in Chromium: the results page
fits without sideways scrolling, its JPM and category columns inside the window and people with
a result above the absent; the admin bar is one line in both languages and its menus reach
every page; the format guide is rendered HTML in Indonesian and English. Screenshots go to
test-results/."""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN
from tests.e2e.test_smoke import SHOTS, watch_console

pytestmark = pytest.mark.e2e

SIZES = [(1024, 768), (1366, 768)]

# Ten people with long names and units (the widest a real roster has): seven hand in, one
# of them a blank test, three never come (the first NIP among them, so NIP order alone would
# mix them in). The blueprint draws kompetensi items too, so the
# results have JPM and a category.
SETUP = """
from sqlalchemy import select
from app.clock import FrozenClock
from app.db import Database
from app.scoring.service import score_pending
from app.sessions.models import Participant
from app.settings import get_settings
from tests.factories import make_open_session, run_import, bank_zip, sit
from tests.integration.test_scoring_service import BLUEPRINT, KOMPETENSI_DOC
settings = get_settings()
secret = settings.resolved_secret()
database = Database(settings.database_url)
clock = FrozenClock()
units = ["Badan Perencanaan Pembangunan, Penelitian dan Pengembangan Daerah Provinsi",
         "Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu", "Sekretariat Daerah"]
with database.transaction() as db:
    run_import(db, clock, "kom.zip", bank_zip(KOMPETENSI_DOC, media={}))
    _, logins = make_open_session(db, clock, secret=secret, blueprint_yaml=BLUEPRINT,
                                  participants=10, code="STAFF-E2E", first=600)
    for n, (nip, token) in enumerate(logins):
        person = db.scalar(select(Participant).where(Participant.nip == nip))
        person.name = f"Raden Ajeng Kusumawardhani Setyaningrum Prawiradirdja {n}"
        person.unit = units[n % 3]
        person.grade = "Ahli Madya"
        if n in (0, 4, 8):  # never come
            continue
        sit(db, clock, nip, token, secret=secret, answer=n != 5)
    score_pending(db, now=clock.now())
"""


@pytest.fixture(scope="module")
def staff_session(live_env) -> str:
    done = subprocess.run([sys.executable, "-c", SETUP], env=live_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return "STAFF-E2E"


def log_in(page: Page, base: str, width: int, height: int) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.goto(base + "/login")
    page.get_by_label("Nama pengguna").fill(ADMIN[0])
    page.get_by_label("Kata sandi").fill(ADMIN[1])
    page.get_by_role("button", name="Masuk").click()
    expect(page).to_have_url(base + "/admin")


def no_sideways_scroll(page: Page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


def bar_is_one_line(page: Page) -> None:
    """Every entry of the top bar sits on one line: the bar is as tall as one entry plus its
    padding, and all entries share their vertical middle."""
    boxes = page.evaluate("""() => {
        const items = [...document.querySelectorAll(
            '.topbar .brand, .nav > a, .nav > details > summary, .topbar-user > details > summary,'
            + ' .topbar-user > form button')];
        return {bar: document.querySelector('.topbar').getBoundingClientRect().height,
                items: items.map(e => { const r = e.getBoundingClientRect();
                                        return {mid: r.top + r.height / 2, h: r.height,
                                                right: r.right, text: e.textContent.trim()}; })};
    }""")
    assert len(boxes["items"]) >= 8, boxes
    middles = {round(item["mid"]) for item in boxes["items"]}
    assert max(middles) - min(middles) <= 2, boxes  # one line, not two
    tallest = max(item["h"] for item in boxes["items"])
    assert boxes["bar"] < 2 * tallest, boxes  # the bar's height is one line's
    width = page.viewport_size["width"]
    assert all(item["right"] <= width for item in boxes["items"]), boxes


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_results_page_fits_and_puts_results_first(page: Page, live_server: str,
                                                  staff_session: str, width: int, height: int):
    problems = watch_console(page)
    log_in(page, live_server, width, height)
    page.goto(f"{live_server}/admin/sessions/{staff_session}/results")
    table = page.get_by_test_id("results-table")
    expect(table).to_be_visible()
    no_sideways_scroll(page, width)
    for name in ("JPM (%)", "Kategori", "Keabsahan"):
        header = table.get_by_role("columnheader", name=name)
        box = header.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, name
    for name in ("Kotak", "Kategori", "Potensi"):  # one-word headers are never split
        link = table.get_by_role("columnheader", name=name).get_by_role("link")
        assert link.evaluate("a => a.getClientRects().length") == 1, name
    assert table.bounding_box()["width"] <= width
    # The table scrolls nowhere: it is no wider than its box.
    assert page.evaluate("""() => { const w = document.querySelector('.table-wrap');
                                    return w.scrollWidth <= w.clientWidth; }""")
    groups = page.locator("tr[data-group]").evaluate_all("rows => rows.map(r => r.dataset.group)")
    assert groups == ["scored"] * 7 + ["absent"] * 3, groups
    jpm = page.locator('tr[data-group="scored"] [data-testid="jpm"]').first
    expect(jpm).not_to_have_text("—")
    jpm_box = jpm.bounding_box()
    assert jpm_box["x"] + jpm_box["width"] <= width
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"admin-results-{width}.png"), full_page=True)

    page.get_by_test_id("results-all-columns").click()
    expect(page).to_have_url(f"{live_server}/admin/sessions/{staff_session}/results"
                             "?sort=nip&dir=asc&view=all")
    expect(table.get_by_role("columnheader", name="Integritas")).to_be_attached()
    no_sideways_scroll(page, width)  # the full table scrolls inside its own box
    page.get_by_test_id("results-compact").click()
    expect(table.get_by_role("columnheader", name="Integritas")).to_have_count(0)
    assert problems == [], problems


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_admin_bar_is_one_line_and_its_menus_reach_every_page(
        page: Page, live_server: str, width: int, height: int):
    problems = watch_console(page)
    log_in(page, live_server, width, height)
    for path in ("/admin", "/admin/sessions", "/admin/banks", "/admin/audit"):
        page.goto(live_server + path)
        bar_is_one_line(page)
        no_sideways_scroll(page, width)
    page.screenshot(path=str(SHOTS / f"admin-bar-{width}.png"))

    nav = page.get_by_role("navigation", name="Navigasi utama")
    content = nav.locator("summary", has_text="Bahan tes")
    blueprints = nav.get_by_role("link", name="Kisi-kisi")
    expect(blueprints).to_be_hidden()
    content.click()
    expect(blueprints).to_be_visible()
    box = blueprints.bounding_box()
    assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height
    page.screenshot(path=str(SHOTS / f"admin-bar-menu-{width}.png"))
    page.keyboard.press("Escape")  # closes the menu, focus back on its button
    expect(blueprints).to_be_hidden()
    assert page.evaluate("document.activeElement.textContent").strip() == "Bahan tes"
    content.click()
    blueprints.click()
    expect(page).to_have_url(live_server + "/admin/blueprints")
    expect(nav.locator("details.is-current summary")).to_have_text("Bahan tes")
    # The current page is marked inside its (closed) menu.
    expect(nav.locator('a[href="/admin/blueprints"]')).to_have_attribute("aria-current", "page")

    system = nav.locator("summary", has_text="Sistem")
    system.click()
    expect(nav.get_by_role("link", name="Pengguna")).to_be_visible()
    content.click()  # opening one menu closes the other
    expect(nav.get_by_role("link", name="Pengguna")).to_be_hidden()
    page.mouse.click(width // 2, height - 20)  # a click elsewhere closes it too
    expect(blueprints).to_be_hidden()
    system.click()
    nav.get_by_role("link", name="Log audit").click()
    expect(page).to_have_url(live_server + "/admin/audit")

    # English, through the account menu: still one line.
    page.get_by_test_id("account-menu").locator("summary").click()
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("navigation", name="Main navigation")).to_be_visible()
    for path in ("/admin", "/admin/programmes", "/admin/standards"):
        page.goto(live_server + path)
        bar_is_one_line(page)
        no_sideways_scroll(page, width)
    page.screenshot(path=str(SHOTS / f"admin-bar-en-{width}.png"))
    page.get_by_test_id("account-menu").locator("summary").click()
    page.get_by_role("button", name="Bahasa Indonesia").click()
    expect(page.get_by_role("navigation", name="Navigasi utama")).to_be_visible()
    # The icons come from the sprite and are drawn text-sized.
    icon = page.locator(".nav svg.icon").first
    size = icon.bounding_box()
    assert 8 <= size["width"] <= 24 and 8 <= size["height"] <= 24, size
    assert problems == [], problems


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_format_guide_is_rendered_in_both_languages(page: Page, live_server: str,
                                                        width: int, height: int):
    problems = watch_console(page)
    log_in(page, live_server, width, height)
    page.goto(live_server + "/admin/help/itembank-format")
    doc = page.get_by_test_id("help-doc")
    expect(doc.locator("h1")).to_have_text("Format bank soal")
    expect(doc.locator("h2", has_text="Kisi-kisi")).to_be_visible()
    assert doc.locator("h2").count() >= 5 and doc.locator("h3").count() >= 5
    assert doc.locator("table").count() >= 3 and doc.locator("pre").count() >= 2
    assert "## " not in doc.inner_text()  # no Markdown left unrendered
    no_sideways_scroll(page, width)
    for block in doc.locator("pre").all():  # code scrolls inside itself, within the window
        box = block.bounding_box()
        assert box["x"] + box["width"] <= width
    page.screenshot(path=str(SHOTS / f"admin-help-id-{width}.png"))

    page.get_by_test_id("account-menu").locator("summary").click()
    page.get_by_role("button", name="English").click()
    expect(doc.locator("h1")).to_have_text("Item bank format")
    expect(doc.locator("h2", has_text="Blueprints")).to_be_visible()
    no_sideways_scroll(page, width)
    page.get_by_test_id("account-menu").locator("summary").click()
    page.get_by_role("button", name="Bahasa Indonesia").click()
    expect(doc.locator("h1")).to_have_text("Format bank soal")
    assert problems == [], problems
