"""The proctor console live in Chromium, beside a taker in another browser context: the
taker's answer appears on the console without a reload (pushed by the event stream), five
extra minutes grow the taker's countdown, and a pause shows on the taker's page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import ADMIN
from tests.e2e.test_smoke import SHOTS, watch_console
from tests.e2e.test_taker import choose, login, start

pytestmark = pytest.mark.e2e


def seconds(text: str) -> int:
    minutes, secs = text.strip().split(":")
    return int(minutes) * 60 + int(secs)


def staff(page: Page, base: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Nama pengguna").fill(ADMIN[0])
    page.get_by_label("Kata sandi").fill(ADMIN[1])
    page.get_by_role("button", name="Masuk").click()
    expect(page).to_have_url(base + "/admin")


def test_console_follows_the_taker_live_and_acts_on_their_page(
        browser: Browser, live_server, exam_logins):
    nip, token = exam_logins["normal"][3]
    proctor = browser.new_context(viewport={"width": 1366, "height": 900}, locale="id-ID")
    console = proctor.new_page()
    console_problems = watch_console(console)
    staff(console, live_server)
    console.goto(live_server + "/proctor/sessions/E2E")
    expect(console.get_by_test_id("stream-status")).to_contain_text("Langsung")
    clock = console.get_by_test_id("session-clock")
    first = clock.inner_text()
    assert re.fullmatch(r"\d\d:\d\d:\d\d", first)
    expect(clock).not_to_have_text(first, timeout=3000)  # the session clock runs
    row = console.get_by_test_id(f"seat-{nip}")
    expect(row.get_by_test_id("state")).to_have_text("Belum masuk")

    taker_context = browser.new_context(locale="id-ID")
    taker = taker_context.new_page()
    taker_problems = watch_console(taker)
    login(taker, live_server, nip, token)
    start(taker)
    choose(taker, 0)
    # Pushed, not reloaded: the same document shows the answer within a few seconds.
    console.evaluate("window.__sameDocument = true")
    expect(row.get_by_test_id("progress")).to_have_text("1/5", timeout=5000)
    expect(row.get_by_test_id("state")).to_have_text("Mengerjakan")
    assert console.evaluate("window.__sameDocument") is True

    before = seconds(taker.get_by_test_id("countdown").inner_text())
    row.get_by_role("link").click()
    panel = console.get_by_test_id("panel")
    panel.get_by_test_id("minutes-extra_time").fill("5")
    panel.get_by_test_id("reason-extra_time").fill("listrik padam")
    panel.get_by_test_id("do-extra_time").click()
    expect(panel.get_by_test_id("panel-notice")).to_be_visible()
    # The taker's page learns it at its next status poll (every 10 s).
    expect(taker.get_by_test_id("countdown")).to_have_text(
        re.compile(r"^1[45]:\d\d$"), timeout=15000)
    assert seconds(taker.get_by_test_id("countdown").inner_text()) > before + 240

    panel.get_by_test_id("do-pause").click()
    expect(panel.get_by_test_id("panel-notice")).to_be_visible()
    expect(row.get_by_test_id("state")).to_have_text("Dijeda", timeout=5000)
    expect(taker.get_by_test_id("pause-overlay")).to_be_visible(timeout=15000)
    SHOTS.mkdir(exist_ok=True)
    console.screenshot(path=str(SHOTS / "proctor-console.png"))
    taker.screenshot(path=str(SHOTS / "taker-paused.png"))
    assert console_problems == [], console_problems
    assert taker_problems == [], taker_problems
    proctor.close()
    taker_context.close()
