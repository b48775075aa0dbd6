"""A test taker in Chromium: a full attempt with keyboard and flags, a reload that resumes,
answering while offline, and the countdown handing in at zero."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_smoke import SHOTS, watch_console

pytestmark = pytest.mark.e2e


def login(page: Page, base: str, nip: str, token: str) -> None:
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(base + "/")
    page.get_by_label("NIP").fill(nip)
    page.get_by_label("Token").fill(token[:4].lower() + "-" + token[4:])
    page.get_by_role("button", name="Masuk").click()


def start(page: Page) -> None:
    page.get_by_test_id("start-exam").click()
    expect(shown(page).get_by_test_id("taker-item")).to_be_visible()


def sit_down(page: Page, base: str, env: dict, setup: str) -> list[str]:
    """Run ``setup`` (a Python script printing [[nip, token]] on its last line) against the
    live server's database, log that one taker in and start; returns the browser console's
    problems so far (a list that keeps filling)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", setup], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [(nip, token)] = json.loads(done.stdout.strip().splitlines()[-1])
    problems = watch_console(page)
    login(page, base, nip, token)
    start(page)
    return problems


def shown(page: Page):
    """The item form on screen (the page holds every item of the open section)."""
    return page.locator("form.item-form:visible")


def choose(page: Page, index: int) -> None:
    shown(page).locator("label.choice").nth(index).click()
    expect(page.get_by_test_id("save-state")).to_have_text("tersimpan")


def test_full_attempt_with_keyboard_flag_reload_and_submit(page: Page, live_server, exam_logins):
    problems = watch_console(page)
    nip, token = exam_logins["normal"][0]
    login(page, live_server, nip, token)
    expect(page.get_by_role("heading", name="Petunjuk")).to_be_visible()
    start(page)
    expect(page.get_by_test_id("countdown")).to_have_text(re.compile(r"^(10:00|9:5\d)$"))
    # Nothing scrolls sideways on a 1024-pixel lab monitor (the report's legend style once
    # made the item page 1034 px wide).
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    choose(page, 1)
    expect(page.locator(".nav-grid a.current")).to_have_class(re.compile("answered"))
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(r"/ujian/soal/2$"))
    page.keyboard.press("b")  # option letters answer
    expect(page.get_by_test_id("save-state")).to_have_text("tersimpan")
    shown(page).get_by_label("Ragu-ragu").check()
    expect(page.get_by_test_id("save-state")).to_have_text("tersimpan")
    expect(page.locator(".nav-grid a.current")).to_have_class(re.compile("flagged"))
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "taker-item.png"), full_page=True)
    chosen_before = shown(page).locator("label.choice.chosen").inner_text()
    page.reload()  # a reload resumes exactly where the taker was
    expect(shown(page).locator("label.choice.chosen")).to_have_text(chosen_before)
    expect(shown(page).get_by_label("Ragu-ragu")).to_be_checked()
    expect(page.get_by_test_id("countdown")).to_have_text(re.compile(r"^9:5\d$"))
    page.get_by_test_id("submit-exam").click()
    expect(page.get_by_test_id("submit-dialog")).to_be_visible()
    expect(page.locator("#submit-summary")).to_contain_text("3 soal belum dijawab dan 1 soal ragu")
    page.get_by_test_id("submit-confirm").click()
    expect(page.get_by_test_id("finished")).to_contain_text("2 dari 5 soal terjawab")
    assert problems == [], problems


def test_answers_given_offline_arrive_when_back_online(page: Page, live_server, exam_logins):
    nip, token = exam_logins["normal"][1]
    login(page, live_server, nip, token)
    start(page)
    page.context.set_offline(True)
    shown(page).locator("label.choice").nth(0).click()
    expect(page.get_by_test_id("offline-banner")).to_be_visible()
    expect(page.get_by_test_id("offline-banner")).to_contain_text("Koneksi terputus")
    expect(page.get_by_test_id("save-state")).to_have_text("belum terkirim")
    page.keyboard.press("ArrowRight")  # moving on works offline: the items are in the page
    expect(page).to_have_url(re.compile(r"/ujian/soal/2$"))
    choose_offline = shown(page).locator("label.choice").nth(1)
    choose_offline.click()
    expect(choose_offline).to_have_class(re.compile("chosen"))
    page.context.set_offline(False)
    expect(page.get_by_test_id("save-state")).to_have_text("tersimpan", timeout=40000)
    expect(page.get_by_test_id("offline-banner")).to_be_hidden()
    page.goto(live_server + "/ujian/soal/1")  # what the server stored, read back
    expect(shown(page).locator("label.choice").nth(0)).to_have_class(re.compile("chosen"))
    page.goto(live_server + "/ujian/soal/2")
    expect(shown(page).locator("label.choice").nth(1)).to_have_class(re.compile("chosen"))
    status = page.request.get(live_server + "/ujian/status").json()
    assert status["state"] == "active"


def test_countdown_reaching_zero_hands_in(page: Page, live_server, exam_logins):
    nip, token = exam_logins["short"][0]
    login(page, live_server, nip, token)
    start(page)
    choose(page, 0)
    # Two 6-second sections: the server opens the second by itself, then time is up.
    expect(page.get_by_test_id("finished")).to_be_visible(timeout=30000)
    expect(page.get_by_test_id("finished")).to_contain_text("Waktu telah habis")
