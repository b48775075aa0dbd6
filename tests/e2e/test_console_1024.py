"""The proctor console on a 1024x768 lab monitor (Chromium): the attention badges of a taker
who saved with trouble, one who tried a second PC and one who went silent are on screen (not
in a column squeezed to nothing), those rows come first and can be shown alone, the page does
not scroll sideways, and a participant's panel opens in view as a drawer that Esc and its
button close. The conditions are made through the services, as the taker side makes them."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_proctor import staff
from tests.e2e.test_smoke import SHOTS, watch_console

pytestmark = pytest.mark.e2e

SETUP = """
import json
from datetime import timedelta
from app.clock import SystemClock
from app.db import Database
from app.delivery import attempts, saving, timing
from app.settings import get_settings
from tests.factories import make_open_session

settings = get_settings()
secret = settings.resolved_secret()
clock = SystemClock()
database = Database(settings.database_url)
with database.transaction() as db:
    _, logins = make_open_session(db, clock, secret=secret, participants=7, code="E2E-1024",
                                  first=70)
    now = clock.now()
    def sit(i, at):
        nip, token = logins[i]
        attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{i:02d}",
                                 client_addr="10.0.0.1", secret=secret, now=at).attempt
        timing.start(db, attempt=attempt, now=at)
        return attempt
    for i in (0, 1, 2):
        sit(i, now + timedelta(minutes=10))  # calm: seen "in the future" of the test
    failing = sit(3, now + timedelta(minutes=10))
    saving.record_save_failures(db, attempt_id=failing.id, failures=14, now=now)
    sit(4, now + timedelta(minutes=10))
    try:  # the same card at a second PC: refused, and the console is told
        attempts.login(db, nip=logins[4][0], token=logins[4][1],
                       workstation="seat-8f3a9c2d1e77", client_addr="10.0.0.9",
                       secret=secret, now=now)
    except attempts.TakerError:
        pass
    else:
        raise SystemExit("a second PC was let in")
    sit(5, now - timedelta(minutes=3))  # silent for three minutes: disconnected
print(json.dumps({"logins": logins}))
"""


def _setup(env: dict) -> list[list[str]]:
    result = subprocess.run([sys.executable, "-c", SETUP], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["logins"]


def _box(locator) -> dict:
    """The element's box once it is laid out. The console's push replaces its table when a
    row changes, so an element seen a moment ago may be between two renderings (no box)."""
    for _ in range(100):
        box = locator.bounding_box()
        if box:
            return box
        locator.page.wait_for_timeout(100)
    raise AssertionError(f"{locator} has no box after 10 s")


def _in_view(page: Page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return bool(box and size and box["width"] > 0 and box["height"] > 0
                and box["x"] >= 0 and box["y"] >= 0
                and box["x"] + box["width"] <= size["width"]
                and box["y"] + box["height"] <= size["height"])


def test_console_fits_1024_shows_attention_and_opens_the_panel_in_view(
        browser: Browser, live_server, live_env):
    logins = _setup(live_env)
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="id-ID")
    page = context.new_page()
    problems = watch_console(page)
    staff(page, live_server)
    page.goto(live_server + "/proctor/sessions/E2E-1024")
    expect(page.get_by_test_id("stream-status")).to_contain_text("Langsung")

    saves = page.get_by_test_id(f"seat-{logins[3][0]}").get_by_test_id(
        "attention-save_failures")
    second_pc = page.get_by_test_id(f"seat-{logins[4][0]}").get_by_test_id(
        "attention-seat_refused")
    silent = page.get_by_test_id(f"seat-{logins[5][0]}").get_by_test_id("attention-silent")
    for badge, text in ((saves, "Banyak simpan gagal"), (second_pc, "Masuk dari PC lain ditolak"),
                        (silent, "Lama tidak ada kabar")):
        expect(badge).to_have_text(text)
        expect(badge).to_be_visible()
        box = _box(badge)
        assert box["width"] > 40 and box["x"] + box["width"] <= 1024, box
    # what the server wrote in English, in the proctor's language
    expect(saves).to_have_attribute(
        "title", "14 kali gagal menyimpan sebelum berhasil tersimpan")
    expect(second_pc).to_have_attribute(
        "title", "Mencoba masuk dari seat-8f3a9c2d1e77; ujian masih terkunci di PC-04")

    # three minutes of silence in minutes, short enough for its column
    expect(page.get_by_test_id(f"seat-{logins[5][0]}").locator("[data-seen-at] time")).to_have_text(
        re.compile(r"^[345] mnt lalu$"))

    # nothing wider than the window: neither the page nor the table inside its box
    widths = page.evaluate("""() => {
        const wrap = document.querySelector('[data-testid=console-table]').parentElement;
        return [document.documentElement.scrollWidth, document.documentElement.clientWidth,
                wrap.scrollWidth, wrap.clientWidth];
    }""")
    assert widths[0] <= widths[1] and widths[2] <= widths[3], widths
    # a row with a badge stays a row, not a 265 px column of wrapped words
    row_height = _box(page.get_by_test_id(f"seat-{logins[3][0]}"))["height"]
    assert row_height < 90, row_height

    # the rows that need attention come first
    order = page.locator("[data-testid=console-table] tbody tr").evaluate_all(
        "rows => rows.map(r => r.classList.contains('needs-attention'))")
    assert order[:3] == [True, True, True] and not any(order[3:]), order
    SHOTS.mkdir(exist_ok=True)
    # caret="initial": hiding the caret leaves style="" on every input of the page, and the
    # next pushes then trip the page's CSP (no inline style) in the console
    page.screenshot(path=str(SHOTS / "proctor-console-1024.png"), caret="initial")

    calm = page.get_by_test_id(f"seat-{logins[0][0]}")
    page.get_by_test_id("attention-filter").click()
    expect(calm).to_be_hidden()
    expect(saves).to_be_visible()
    # "select all" while filtered takes the rows on screen, not the hidden ones
    select_all = page.get_by_label("Pilih semua")
    select_all.check()
    expect(page.get_by_test_id("bulk-form").locator("[data-selected-count]")).to_have_text("3")
    select_all.uncheck()
    expect(page.get_by_test_id("bulk-form").locator("[data-selected-count]")).to_have_text("0")
    page.get_by_test_id("attention-filter").click()
    expect(calm).to_be_visible()

    # a name opens the panel where it can be seen, without scrolling the page
    drawer = page.get_by_test_id("panel-drawer")
    expect(drawer).to_be_hidden()
    page.get_by_test_id(f"seat-{logins[3][0]}").get_by_role("link").click()
    name = page.get_by_test_id("panel-name")
    expect(name).to_have_text("Peserta 73")
    expect(drawer).to_be_visible()
    assert _in_view(page, name)
    assert _in_view(page, page.get_by_test_id("panel-close"))
    assert page.evaluate("window.scrollY") == 0
    expect(page.get_by_test_id("notes")).to_contain_text(
        "14 kali gagal menyimpan sebelum berhasil tersimpan")
    page.screenshot(path=str(SHOTS / "proctor-console-panel-1024.png"), caret="initial")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    # opened again further down the list (after a scroll), closed by its button
    target = page.get_by_test_id(f"seat-{logins[6][0]}").get_by_role("link")
    target.scroll_into_view_if_needed()
    target.click()
    expect(name).to_have_text("Peserta 76")
    assert _in_view(page, name)
    page.get_by_test_id("panel-close").click()
    expect(drawer).to_be_hidden()
    expect(target).to_be_focused()
    assert problems == [], problems
    context.close()
