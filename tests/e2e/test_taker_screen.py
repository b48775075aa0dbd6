"""The taker's screen on a lab monitor (1024x768 and 1366x768, Chromium): the half-day form of
the sample banks (three sections, 112 items, a whole-test limit). The submit dialog counts what
the server counts after three sections; the question, its options and the submit button are on
screen without scrolling, nothing is wider than the window, also with the larger text; a pause
reaches the page through its event stream, and an answer the server refused because of a pause
arrives after the resume."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_smoke import SHOTS, watch_console
from tests.e2e.test_taker import login, shown

pytestmark = pytest.mark.e2e

SETUP = """
import json
from datetime import timedelta
from pathlib import Path
from sqlalchemy import select
from app.assembly.service import import_blueprint
from app.auth.security import decrypt_token
from app.bank.reading import ImportOptions, read_path
from app.bank.service import import_bank
from app.clock import SystemClock
from app.db import Database
from app.sessions.models import Participant, RosterEntry
from app.sessions.roster import RosterRow, import_roster
from app.sessions.service import change_state, create_session
from app.settings import get_settings
settings = get_settings()
database = Database(settings.database_url)
now = SystemClock().now()
samples = Path("itembank/samples")
with database.transaction() as db:
    for folder in ("potensi", "kompetensi"):
        import_bank(db, read_path(samples / folder), source=folder, options=ImportOptions(),
                    actor="e2e", actor_id=None, now=now)
    text = (samples / "cact-setengah-hari.blueprint.yaml").read_text(encoding="utf-8")
    blueprint = import_blueprint(db, text.replace("CACT-SETENGAH-HARI", "LAYAR-BP"),
                                 source="bp.yaml", actor="e2e", now=now)
    session = create_session(db, code="LAYAR", name="Sesi layar", room="Lab 2",
                             blueprint_code=blueprint.code, starts_at=now,
                             ends_at=now + timedelta(hours=6), actor="e2e", now=now)
    change_state(db, session=session, action="open", actor="e2e", now=now)
    rows = [RosterRow(nip=f"19850505201001{n:04d}", name=f"Peserta Layar {n}",
                      job_group="pelaksana", grade="", position="", unit="")
            for n in range(1, 7)]
    import_roster(db, session=session, rows=rows, secret=settings.resolved_secret(),
                  actor="e2e", now=now)
    logins = [(nip, decrypt_token(settings.resolved_secret(), entry.token_encrypted))
              for entry, nip in db.execute(
                  select(RosterEntry, Participant.nip)
                  .join(Participant, Participant.id == RosterEntry.participant_id)
                  .where(RosterEntry.session_id == session.id)
                  .order_by(Participant.nip))]
print(json.dumps(logins))
"""

# The server's own view of one attempt, by NIP: its summary and every stored answer.
SERVER_VIEW = """
import json, sys
from sqlalchemy import select
from app.clock import SystemClock
from app.db import Database
from app.delivery.models import Answer, Attempt
from app.delivery.views import attempt_view
from app.sessions.models import Participant, RosterEntry
from app.settings import get_settings
database = Database(get_settings().database_url)
with database.transaction(write=False) as db:
    attempt = db.scalars(select(Attempt)
                         .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
                         .join(Participant, Participant.id == RosterEntry.participant_id)
                         .where(Participant.nip == sys.argv[1])).one()
    view = attempt_view(db, attempt=attempt, now=SystemClock().now())
    answers = {str(a.item_id): [a.response, a.seq] for a in
               db.scalars(select(Answer).where(Answer.attempt_id == attempt.id))}
    print(json.dumps({"summary": view.summary(), "state": view.state, "answers": answers,
                      "counts": view.counts}))
"""

# A proctor's pause or resume of one attempt, through the proctoring service.
PROCTOR = """
import sys
from sqlalchemy import select
from app.clock import SystemClock
from app.db import Database
from app.delivery.models import Attempt
from app.proctoring.service import pause_attempt, resume_attempt
from app.sessions.models import Participant, RosterEntry
from app.settings import get_settings
database = Database(get_settings().database_url)
with database.transaction() as db:
    attempt = db.scalars(select(Attempt)
                         .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
                         .join(Participant, Participant.id == RosterEntry.participant_id)
                         .where(Participant.nip == sys.argv[2])).one()
    act = pause_attempt if sys.argv[1] == "pause" else resume_attempt
    assert act(db, attempt=attempt, actor="e2e", now=SystemClock().now())
"""


# A multiple-response item that takes at most two options (a bank of its own code).
SETUP_CHOICES = """
import json
from app.clock import SystemClock
from app.db import Database
from app.settings import get_settings
from tests.factories import BLUEPRINT, bank_doc, bank_zip, make_open_session, run_import
settings = get_settings()
database = Database(settings.database_url)
doc = bank_doc(bank={"code": "UJI-PILIH", "title": "Bank pilih", "kind": "potensi"})
for item in doc["items"]:
    if item["kind"] == "multiple":
        item["scoring"] = {"min": 0, "max": 5, "max_choices": 2}
with database.transaction() as db:
    run_import(db, SystemClock(), "pilih.zip", bank_zip(doc))
    _, logins = make_open_session(db, SystemClock(), secret=settings.resolved_secret(),
                                  participants=1, code="PILIH", first=930,
                                  blueprint_yaml=BLUEPRINT.replace("UJI-POT", "UJI-PILIH"))
print(json.dumps(logins))
"""


def run(env: dict, script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


@pytest.fixture(scope="module")
def screen_logins(live_server, live_env) -> list[list[str]]:
    return json.loads(run(live_env, SETUP))


def server_view(env: dict, nip: str) -> dict:
    return json.loads(run(env, SERVER_VIEW, nip))


def saved(page: Page) -> None:
    expect(page.get_by_test_id("save-state")).to_have_text("tersimpan")


def in_viewport(page: Page, selector: str) -> bool:
    """The element is wholly inside the window as it is (no scrolling)."""
    return page.evaluate(
        """(sel) => { const el = document.querySelector(sel); if (!el) return false;
             const r = el.getBoundingClientRect();
             return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight
                    && r.right <= innerWidth; }""", selector)


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    window = page.evaluate("innerWidth")
    assert width <= window, f"page {width} px wide in a {window} px window"


def answer_section(page: Page, count: int, *, skip: set[int] = frozenset(),
                   flag: set[int] = frozenset()) -> list[int]:
    """Answer (key "a") the open section's items one after another, except ``skip`` (their
    places in the section, 0-based), flag ``flag`` with the ragu-ragu key; returns the item
    numbers skipped."""
    # the page's script is running (it writes the countdown) before the first key
    expect(page.get_by_test_id("countdown")).to_have_text(re.compile(r"\d:\d\d$"))
    skipped = []
    for index in range(count):
        number = int(shown(page).get_attribute("data-position"))
        if index in skip:
            skipped.append(number)
        else:
            page.keyboard.press("a")
        if index in flag:
            page.keyboard.press("r")
        if index + 1 < count:
            page.keyboard.press("ArrowRight")
            expect(page).to_have_url(re.compile(rf"/ujian/soal/{number + 1}$"))
    saved(page)
    return skipped


def test_submit_dialog_counts_what_the_server_counts_after_three_sections(
        page: Page, live_server, live_env, screen_logins):
    problems = watch_console(page)
    nip, token = screen_logins[0]
    login(page, live_server, nip, token)
    page.get_by_test_id("start-exam").click()
    expect(page.get_by_test_id("countdown-label")).to_have_text("Sisa waktu bagian 1 dari 3")
    expect(page.get_by_test_id("test-countdown")).to_have_text(re.compile(r"^2:1\d:\d\d$"))
    answer_section(page, 42, flag={3, 10, 20})
    page.get_by_test_id("next-section").click()
    expect(page.get_by_test_id("next-summary")).to_have_text(
        "Semua soal di bagian ini sudah dijawab.")
    page.get_by_test_id("next-confirm").click()
    expect(page.get_by_test_id("countdown-label")).to_have_text("Sisa waktu bagian 2 dari 3")
    # section 2: leave one out first, so that the next-section dialog names it
    skipped = answer_section(page, 16, skip={5}, flag={1, 2})
    page.get_by_test_id("next-section").click()
    expect(page.get_by_test_id("next-summary")).to_have_text(
        "1 soal di bagian ini belum dijawab.")
    page.get_by_test_id("next-dialog").get_by_role("link", name=f"Soal {skipped[0]}").click()
    expect(page).to_have_url(re.compile(rf"/ujian/soal/{skipped[0]}$"))
    page.keyboard.press("a")
    saved(page)
    page.get_by_test_id("next-section").click()
    expect(page.get_by_test_id("next-summary")).to_have_text(
        "Semua soal di bagian ini sudah dijawab.")
    page.get_by_test_id("next-confirm").click()
    expect(page.get_by_test_id("countdown-label")).to_have_text("Sisa waktu bagian 3 dari 3")
    skipped = answer_section(page, 54, skip={7, 30}, flag={0, 7, 40})

    page.get_by_test_id("submit-exam").click()
    dialog = page.get_by_test_id("submit-dialog")
    expect(dialog).to_be_visible()
    truth = server_view(live_env, nip)["summary"]
    assert truth["unanswered"] == skipped and len(truth["flagged"]) == 8, truth
    expect(page.locator("#submit-summary")).to_contain_text(
        "Masih ada 2 soal belum dijawab dan 8 soal ragu-ragu")
    expect(page.locator("#submit-unanswered .jump")).to_have_text([str(n) for n in skipped])
    expect(page.locator("#submit-flagged .jump")).to_have_text(
        [str(n) for n in truth["flagged"]])
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "taker-submit-dialog.png"))
    # a number jumps to its item
    page.locator("#submit-unanswered a.jump").first.click()
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(re.compile(rf"/ujian/soal/{skipped[0]}$"))
    page.get_by_test_id("submit-exam").click()
    page.get_by_test_id("submit-confirm").click()
    expect(page.get_by_test_id("finished")).to_contain_text("110 dari 112 soal terjawab")
    assert problems == [], problems


@pytest.mark.parametrize("width", [1024, 1366])
def test_question_first_grid_in_its_panel_nothing_sideways(page: Page, live_server,
                                                           screen_logins, width):
    problems = watch_console(page)
    nip, token = screen_logins[1 if width == 1024 else 2]
    login(page, live_server, nip, token)
    page.set_viewport_size({"width": width, "height": 768})
    no_sideways_scroll(page)  # the instructions page too
    page.get_by_test_id("start-exam").click()
    expect(page).to_have_url(re.compile(r"/ujian/soal/1$"))
    # item 1: the section's instructions are open (first view), yet the question and every
    # option are on screen, and so is the submit button under the 112-cell grid
    expect(page.get_by_test_id("section-head")).to_have_attribute("open", "")
    count = shown(page).locator("label.choice").count()
    assert in_viewport(page, "form.item-form:not([hidden]) .item-stem")
    assert in_viewport(page, f"form.item-form:not([hidden]) label.choice:nth-of-type({count})")
    assert in_viewport(page, "[data-testid=submit-exam]")
    no_sideways_scroll(page)
    if width == 1024:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "taker-item-1024.png"))
    # after the first view the instructions are collapsed, one click reopens them
    page.reload()
    expect(page.get_by_test_id("section-head")).not_to_have_attribute("open", "")
    page.get_by_test_id("section-head").locator("summary").click()
    expect(page.get_by_test_id("section-head")).to_have_attribute("open", "")
    # every figural item (an image and five options): its last option, "Berikutnya" and the
    # submit button fit without scrolling
    figural = page.evaluate("""() => [...document.querySelectorAll('form.item-form')]
        .filter(f => f.querySelector('.item-stem img')).map(f => f.dataset.position)""")
    assert len(figural) == 12, figural  # the first section's 12 figural items
    for position in figural:
        page.locator(f'.nav-grid a[data-position="{position}"]').click()
        expect(page).to_have_url(re.compile(rf"/ujian/soal/{position}$"))
        page.wait_for_function(
            "[...document.querySelectorAll('form.item-form:not([hidden]) img')]"
            ".every(i => i.complete && i.naturalWidth > 0)")
        count = shown(page).locator("label.choice").count()
        last = f"form.item-form:not([hidden]) label.choice:nth-of-type({count})"
        if position == figural[0] and width == 1024:
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / "taker-figural-1024.png"))
        assert in_viewport(page, last), position
        nav = "a.nav-next" if shown(page).locator("a.nav-next").count() else "a.nav-prev"
        assert in_viewport(page, f"form.item-form:not([hidden]) {nav}"), position
        assert in_viewport(page, "[data-testid=submit-exam]"), position
        no_sideways_scroll(page)
    # every item of the open section: the question's start and the submit button on screen,
    # nothing wider than the window
    for position in page.evaluate(
            "[...document.querySelectorAll('.nav-grid a.cell')].map(a => a.dataset.position)"):
        page.locator(f'.nav-grid a[data-position="{position}"]').click()
        expect(page).to_have_url(re.compile(rf"/ujian/soal/{position}$"))
        assert in_viewport(page, "form.item-form:not([hidden]) .item-number"), position
        assert in_viewport(page, "[data-testid=submit-exam]"), position
        no_sideways_scroll(page)
    # the larger text keeps the page inside the window and the submit button on screen
    page.locator("#font-toggle").click()
    expect(page.locator("body")).to_have_class(re.compile("large-font"))
    no_sideways_scroll(page)
    assert in_viewport(page, "[data-testid=submit-exam]")
    assert in_viewport(page, "form.item-form:not([hidden]) .item-stem")
    page.locator(".nav-grid a.cell").last.click()
    no_sideways_scroll(page)
    assert in_viewport(page, "[data-testid=submit-exam]")
    page.screenshot(path=str(SHOTS / f"taker-large-font-{width}.png"))
    page.locator("#font-toggle").click()  # the setting is kept per PC: leave it off
    # the key for ragu-ragu, named in the help under the grid
    page.keyboard.press("r")
    expect(shown(page).get_by_label("Ragu-ragu")).to_be_checked()
    page.get_by_test_id("keys-help").locator("summary").click()
    expect(page.get_by_test_id("keys-help")).to_contain_text("R: tandai/hapus ragu-ragu")
    assert problems == [], problems


def test_pause_arrives_by_push_and_an_answer_refused_during_it_is_sent_after(
        page: Page, live_server, live_env, screen_logins):
    nip, token = screen_logins[3]
    login(page, live_server, nip, token)
    page.get_by_test_id("start-exam").click()
    expect(shown(page).get_by_test_id("taker-item")).to_be_visible()
    # only the event stream may tell the page: its status poll is cut off
    page.route("**/ujian/status", lambda route: route.abort())
    run(live_env, PROCTOR, "pause", nip)
    expect(page.get_by_test_id("pause-overlay")).to_be_visible()
    run(live_env, PROCTOR, "resume", nip)
    expect(page.get_by_test_id("pause-overlay")).to_be_hidden()

    # Now the page does not hear of the next pause (stream and poll cut off) and the taker
    # answers: the server refuses it because of the pause, and the page keeps it.
    page.route("**/ujian/peristiwa", lambda route: route.abort())
    page.reload()  # its open stream ends; the new ones are cut off
    expect(shown(page).get_by_test_id("taker-item")).to_be_visible()
    run(live_env, PROCTOR, "pause", nip)
    item = shown(page).get_attribute("data-item")
    shown(page).locator("label.choice").nth(1).click()
    expect(page.get_by_test_id("pause-overlay")).to_be_visible()  # the refusal said why
    expect(page.get_by_test_id("pause-kept")).to_be_visible()
    expect(page.get_by_test_id("save-state")).to_have_text("jeda - menunggu")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "taker-pause-kept.png"))
    journal = page.evaluate("() => Object.keys(localStorage).filter(k => k.endsWith(':journal'))"
                            ".map(k => JSON.parse(localStorage.getItem(k)))")
    assert any(item in entries for entries in journal), journal
    assert item not in server_view(live_env, nip)["answers"]
    run(live_env, PROCTOR, "resume", nip)
    page.unroute("**/ujian/peristiwa")
    expect(page.get_by_test_id("pause-overlay")).to_be_hidden(timeout=15000)
    saved(page)
    stored = server_view(live_env, nip)["answers"][item]
    assert stored[0] is not None


def test_a_third_option_is_not_ticked_where_two_is_the_most(page: Page, live_server, live_env):
    nip, token = json.loads(run(live_env, SETUP_CHOICES))[0]
    login(page, live_server, nip, token)
    page.get_by_test_id("start-exam").click()
    expect(shown(page).get_by_test_id("taker-item")).to_be_visible()
    position = page.locator('form.item-form[data-kind="multiple"]').get_attribute("data-position")
    page.locator(f'.nav-grid a[data-position="{position}"]').click()
    hint = shown(page).get_by_test_id("choice-hint")
    expect(hint).to_have_text("Pilih paling banyak 2 jawaban.")
    options = shown(page).locator("label.choice")
    options.nth(0).click()
    saved(page)
    options.nth(1).click()
    saved(page)
    options.nth(2).click()
    expect(options.nth(2)).not_to_have_class(re.compile("chosen"))
    expect(hint).to_have_text(
        "Sudah 2 jawaban dipilih: hapus salah satu dulu untuk memilih yang lain.")
    item = shown(page).get_attribute("data-item")
    stored = server_view(live_env, nip)["answers"][item]
    assert len(stored[0]) == 2, stored
    options.nth(0).click()  # one off: room again, and the hint says so
    expect(hint).to_have_text("Pilih paling banyak 2 jawaban.")
    saved(page)
