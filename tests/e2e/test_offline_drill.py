"""Durability drill in Chromium: a taker's PC loses the network for several minutes
(CACT_DRILL_OFFLINE_S, default 150 s; `make drill` uses 300) and keeps answering: five items,
a flag and a change of mind, while a proctor gives five extra minutes. Back online, every
answer reaches the server (the last choice wins), and the countdown shows what the server
says is left, extra time included."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest
from playwright.sync_api import Browser, Page, expect

from app.proctoring.routes import STREAM_MAX_S
from tests.e2e.test_proctor import seconds, staff
from tests.e2e.test_smoke import SHOTS, watch_console
from tests.e2e.test_taker import login, shown, start

pytestmark = pytest.mark.e2e

OFFLINE_S = float(os.environ.get("CACT_DRILL_OFFLINE_S", "150"))
CODE = "E2E-DRILL"
EXTRA_MINUTES = 5
# One section with every item of the test bank, long enough for the offline period + margin.
LIMIT_MINUTES = int(OFFLINE_S // 60) + 15
SETUP_DRILL = f"""
import json
from app.clock import SystemClock
from app.db import Database
from app.settings import get_settings
from tests.factories import make_open_session
BLUEPRINT = '''\\
format: cact-blueprint/1
code: UJI-BP
name: Drill
sections:
  - title: Semua
    time_limit_minutes: {LIMIT_MINUTES}
    picks:
      - {{bank: UJI-POT, construct: potensi.numerik, count: 1}}
      - {{bank: UJI-POT, construct: potensi.figural, count: 1}}
      - {{bank: UJI-POT, construct: potensi.verbal, count: 1}}
      - {{bank: UJI-POT, construct: potensi.kecerdasan_emosional, count: 1}}
      - {{bank: UJI-POT, construct: potensi.motivasi_komitmen, count: 1}}
'''
settings = get_settings()
database = Database(settings.database_url)
with database.transaction() as db:
    _, logins = make_open_session(db, SystemClock(), secret=settings.resolved_secret(),
                                  blueprint_yaml=BLUEPRINT, participants=1, code="{CODE}",
                                  first=80)
print(json.dumps(logins))
"""


@pytest.fixture(scope="module")
def drill_login(live_env) -> tuple[str, str]:
    """A session of its own: one 5-item section of LIMIT_MINUTES, one participant."""
    result = subprocess.run([sys.executable, "-c", SETUP_DRILL], env=live_env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    nip, token = json.loads(result.stdout.strip().splitlines()[-1])[0]
    return nip, token


class StoredAnswers(HTMLParser):
    """What the server rendered into an item page (no script ran): for every item form, the
    checked option ids and whether it is flagged."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[int, dict] = {}
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        attr = dict(attrs)
        if tag == "form" and "item-form" in (attr.get("class") or ""):
            self._current = {"kind": attr["data-kind"], "chosen": set(), "flagged": False}
            self.forms[int(attr["data-position"])] = self._current
        elif tag == "input" and self._current is not None and "checked" in attr:
            if attr.get("name") == "response":
                self._current["chosen"].add(attr["value"])
            elif attr.get("name") == "flagged":
                self._current["flagged"] = True

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def countdown_s(page: Page) -> tuple[int, float]:
    """The countdown on the page in seconds, and when it was read (monotonic)."""
    return seconds(page.get_by_test_id("countdown").inner_text()), time.monotonic()


def test_taker_offline_for_minutes_loses_nothing_and_keeps_the_right_time(
        page: Page, browser: Browser, live_server, drill_login):
    problems = watch_console(page)
    nip, token = drill_login
    base = live_server
    proctor = browser.new_context(viewport={"width": 1366, "height": 900}, locale="id-ID")
    console = proctor.new_page()
    console_problems = watch_console(console)
    staff(console, base)
    console.goto(base + f"/proctor/sessions/{CODE}")
    console_opened = time.monotonic()
    expect(console.get_by_test_id("stream-status")).to_contain_text("Langsung")
    seat_api = base + f"/api/v1/proctor/sessions/{CODE}"

    def server_seat() -> dict:
        seats = console.request.get(seat_api).json()["seats"]
        return next(s for s in seats if s["nip"] == nip)

    login(page, base, nip, token)
    start(page)
    limit_s = LIMIT_MINUTES * 60
    expect(page.get_by_test_id("countdown")).not_to_have_text("")
    start_left, _ = countdown_s(page)
    assert limit_s - 5 <= start_left <= limit_s, start_left
    forms = page.locator("form.item-form")
    expect(forms).to_have_count(5)
    kinds = {int(f.get_attribute("data-position")): f.get_attribute("data-kind")
             for f in forms.all()}
    expected: dict[int, set[str]] = {p: set() for p in kinds}

    def pick(index: int) -> None:
        """Click an option of the item on screen; remember what the taker now has chosen."""
        position = int(shown(page).get_attribute("data-position"))
        label = shown(page).locator("label.choice").nth(index)
        value = label.locator("input").get_attribute("value")
        label.click()
        if kinds[position] == "multiple":
            expected[position] ^= {value}
        else:
            expected[position] = {value}
        expect(shown(page).locator("label.choice.chosen")).to_have_count(
            len(expected[position]))

    def next_item(position: int) -> None:
        page.keyboard.press("ArrowRight")  # moving on works offline: the items are in the page
        expect(page).to_have_url(re.compile(rf"/ujian/soal/{position}$"))

    # A non-multiple item is where the taker changes their mind (radio: the last choice wins).
    changed = next(p for p in sorted(kinds) if kinds[p] != "multiple")
    flagged = 3

    def answer_and_flag() -> None:
        next_item(3)
        pick(0)
        shown(page).get_by_label("Ragu-ragu").check()

    def change_mind() -> None:
        page.locator(f'.nav-grid a.cell[data-position="{changed}"]').click()
        expect(page).to_have_url(re.compile(rf"/ujian/soal/{changed}$"))
        values = [i.get_attribute("value") for i in shown(page).locator("label.choice input")
                  .all()]
        pick(next(n for n, v in enumerate(values) if v not in expected[changed]))

    def give_extra_time() -> None:
        """The proctor's console is online; the taker's page cannot hear about it now."""
        before = server_seat()
        page_left, _ = countdown_s(page)
        assert abs(before["remaining_s"] - page_left) <= 2, (before, page_left)
        console.get_by_test_id(f"seat-{nip}").get_by_role("link").click()
        panel = console.get_by_test_id("panel")
        panel.get_by_test_id("minutes-extra_time").fill(str(EXTRA_MINUTES))
        panel.get_by_test_id("reason-extra_time").fill("jaringan lab putus")
        panel.get_by_test_id("do-extra_time").click()
        expect(panel.get_by_test_id("panel-notice")).to_be_visible()
        after = server_seat()
        assert after["extra_min"] == EXTRA_MINUTES, after
        page_left, _ = countdown_s(page)
        assert abs(after["remaining_s"] - EXTRA_MINUTES * 60 - page_left) <= 2, (after, page_left)

    steps = [
        lambda: pick(0),
        lambda: (next_item(2), pick(1)),
        answer_and_flag,
        lambda: (next_item(4), pick(1)),
        lambda: (next_item(5), pick(0)),
        give_extra_time,
        change_mind,
    ]
    spacing = OFFLINE_S / len(steps)

    page.context.set_offline(True)
    went_offline = time.monotonic()
    offline_left, offline_read = countdown_s(page)
    for n, step in enumerate(steps):
        page.wait_for_timeout(max(0.0, went_offline + n * spacing - time.monotonic()) * 1000)
        step()
        expect(page.get_by_test_id("offline-banner")).to_be_visible()
        expect(page.get_by_test_id("offline-banner")).to_contain_text("Koneksi terputus")
        expect(page.get_by_test_id("save-state")).to_have_text("belum terkirim")
    page.wait_for_timeout(max(0.0, went_offline + OFFLINE_S - time.monotonic()) * 1000)

    # Still offline, minutes later: everything shows as given, nothing is sent, time ran on.
    expect(page.locator(".nav-grid a.cell.answered")).to_have_count(5)
    expect(page.locator(".nav-grid a.cell.flagged")).to_have_count(1)
    expect(page.locator(f'.nav-grid a.cell.flagged[data-position="{flagged}"]')).to_be_visible()
    expect(page.get_by_test_id("offline-banner")).to_be_visible()
    expect(page.get_by_test_id("save-state")).to_have_text("belum terkirim")
    late_left, late_read = countdown_s(page)
    ran = late_read - offline_read
    assert abs((offline_left - late_left) - ran) <= 2, (offline_left, late_left, ran)
    assert ran >= OFFLINE_S - 2
    journal = page.evaluate("Object.keys(localStorage).filter(k => k.endsWith(':journal'))"
                            ".map(k => JSON.parse(localStorage.getItem(k)))")
    assert len(journal) == 1 and len(journal[0]) == 5, journal  # one entry per item
    assert server_seat()["answered"] == 0  # nothing reached the server while offline
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "taker-offline-drill.png"), full_page=True)

    page.context.set_offline(False)
    back = time.monotonic()
    expect(page.get_by_test_id("save-state")).to_have_text("tersimpan", timeout=40000)
    resync_s = time.monotonic() - back
    expect(page.get_by_test_id("offline-banner")).to_be_hidden()
    journal = page.evaluate("Object.keys(localStorage).filter(k => k.endsWith(':journal'))"
                            ".map(k => localStorage.getItem(k))")
    assert journal == ["{}"], journal

    # The countdown picked the new deadline up: what the server says is left, extra included.
    shown_left, shown_read = countdown_s(page)
    status = page.request.get(base + "/ujian/status").json()
    assert status["state"] == "active", status
    assert abs(status["remaining_s"] - shown_left) <= 2, (status, shown_left)
    assert abs(shown_left - (offline_left - (shown_read - offline_read)
                             + EXTRA_MINUTES * 60)) <= 2, (offline_left, shown_left)

    # What the server stored, read from the HTML it renders (no journal, no script involved).
    stored = StoredAnswers()
    stored.feed(page.request.get(base + "/ujian/soal/1").text())
    assert all(expected.values()), expected  # the taker answered every item
    assert {p: f["chosen"] for p, f in stored.forms.items()} == expected
    assert {p for p, f in stored.forms.items() if f["flagged"]} == {flagged}
    seat = server_seat()
    assert (seat["answered"], seat["flagged"], seat["extra_min"]) == (5, 1, EXTRA_MINUTES), seat
    # And the page after a reload agrees (the journal is empty, so this is the server's view).
    page.reload()
    expect(page.locator(".nav-grid a.cell.answered")).to_have_count(5)
    reloaded_left, reloaded_read = countdown_s(page)
    assert abs(reloaded_left - (shown_left - (reloaded_read - shown_read))) <= 2, reloaded_left

    offline_noise = re.compile(r"ERR_INTERNET_DISCONNECTED")
    assert [p for p in problems if not offline_noise.search(p)] == [], problems
    # The server ends the console's event stream every STREAM_MAX_S (the browser reconnects
    # through authorization again); htmx's sse extension logs each end as "[object Event]".
    ends = [p for p in console_problems if p == "[object Event]"]
    assert len(ends) <= (time.monotonic() - console_opened) // STREAM_MAX_S, console_problems
    assert [p for p in console_problems if p not in ends] == [], console_problems
    expect(console.get_by_test_id("stream-status")).to_contain_text("Langsung")
    print(f"\ndrill: offline {ran:.0f} s, answers back on the server {resync_s:.1f} s after "
          f"the network returned")
    proctor.close()
