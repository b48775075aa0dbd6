"""An admin walks the programme pages in Chromium at 1024x768: create a programme, attach two
sessions (two days), read the results of both together, give one person's other attempt the
count with a reason, build the zip of all reports behind its progress bar, open the talent
map. No script error, no sideways scrolling."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN
from tests.e2e.test_smoke import SHOTS, watch_console

pytestmark = pytest.mark.e2e

SETUP = """
import json
from datetime import timedelta
from app.clock import FrozenClock
from app.db import Database
from app.settings import get_settings
from tests.factories import make_open_session, sit
settings = get_settings()
secret = settings.resolved_secret()
database = Database(settings.database_url)
clock = FrozenClock()
with database.transaction() as db:
    _, day1 = make_open_session(db, clock, secret=secret, participants=6, code="PROG-H1",
                                first=700, validity={"rapid_threshold_s": 0})
    clock.advance(86400)
    _, day2 = make_open_session(db, clock, secret=secret, participants=4, code="PROG-H2",
                                first=720, validity={"rapid_threshold_s": 0})
    for number, (nip, token) in enumerate(day1):
        sit(db, clock, nip, token, secret=secret, answer=number != 0)  # the first: nothing
    for nip, token in day2:
        sit(db, clock, nip, token, secret=secret)
print(json.dumps({"blank": day1[0][0]}))
"""


@pytest.fixture(scope="module")
def two_days(live_env) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", SETUP], env=live_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def no_sideways_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024


def test_an_admin_runs_a_programme(page: Page, live_server: str, two_days: dict[str, str]):
    problems = watch_console(page)
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(live_server + "/login")
    page.get_by_label("Nama pengguna").fill(ADMIN[0])
    page.get_by_label("Kata sandi").fill(ADMIN[1])
    page.get_by_role("button", name="Masuk").click()

    page.get_by_role("link", name="Program asesmen").click()
    expect(page.get_by_role("heading", name="Program asesmen")).to_be_visible()
    form = page.get_by_test_id("programme-form")
    form.get_by_label("Kode").fill("pemetaan-e2e")
    form.get_by_label("Nama program").fill("Pemetaan Kompetensi E2E")
    form.get_by_label("Tujuan").select_option("mapping")
    form.get_by_role("button", name="Buat program").click()
    expect(page).to_have_url(live_server + "/admin/programmes/PEMETAAN-E2E")
    no_sideways_scroll(page)

    for code in ("PROG-H1", "PROG-H2"):
        attach = page.get_by_test_id("attach-form")
        attach.get_by_label("Sesi").select_option(code)
        attach.get_by_role("button", name="Tambahkan ke program").click()
        expect(page.get_by_test_id("programme-notice")).to_contain_text(code)
    expect(page.get_by_test_id("programme-sessions")).to_contain_text("PROG-H2")

    page.get_by_test_id("programme-results-link").click()
    summary = page.get_by_test_id("programme-results-summary")
    expect(summary).to_contain_text("10 pegawai dari sesi PROG-H1, PROG-H2")
    expect(page.get_by_test_id("count-not-scoreable")).to_have_text("1")
    rows = page.get_by_test_id("programme-results").locator("tbody tr")
    expect(rows).to_have_count(10)
    blank = page.locator(f'tr[data-nip="{two_days["blank"]}"]')
    expect(blank).to_contain_text("Tidak dapat dinilai")
    expect(blank).to_contain_text("0 dari")
    no_sideways_scroll(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "programme-results.png"), full_page=True)

    page.get_by_label("Status").select_option("scored")
    page.get_by_role("button", name="Tampilkan").click()
    expect(rows).to_have_count(9)
    page.get_by_test_id("programme-sort").get_by_role("link", name="JPM").click()
    expect(page).to_have_url(re.compile(r"status=scored.*sort=jpm|sort=jpm.*status=scored"))
    expect(rows).to_have_count(9)

    page.goto(f"{live_server}/admin/programmes/PEMETAAN-E2E/people/{two_days['blank']}")
    expect(page.get_by_test_id("counted")).to_contain_text("PROG-H1")
    expect(page.get_by_label("Kembali ke aturan")).to_be_checked()
    page.get_by_role("radio", name="PROG-H1").check()
    page.get_by_label("Alasan (wajib, dicatat di log audit)").fill("Diperiksa: PC mati")
    page.get_by_role("button", name="Simpan pilihan").click()
    expect(page.get_by_test_id("counted")).to_contain_text("Dipilih admin: Diperiksa: PC mati")
    no_sideways_scroll(page)

    page.goto(live_server + "/admin/programmes/PEMETAAN-E2E")
    page.get_by_test_id("zip-form").get_by_role("button").click()
    expect(page.get_by_test_id("zip-download")).to_be_visible(timeout=60_000)
    with page.expect_download() as download:
        page.get_by_test_id("zip-download").click()
    assert download.value.suggested_filename.endswith(".zip")

    page.goto(live_server + "/admin/programmes/PEMETAAN-E2E/talent-map")
    expect(page.locator("h1")).to_contain_text("PEMETAAN-E2E")
    no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / "programme-talent-map.png"), full_page=True)
    assert problems == [], problems
