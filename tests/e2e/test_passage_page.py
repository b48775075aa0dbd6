"""A reading passage on the taker's page at 1024x768: shown above each item asked about it,
with its image served by the server, in a box that scrolls on its own so that a long passage
never pushes the question and its options off the screen; items without a passage show none.
The bank comes in as a QTI 3 package with a shared stimulus, as authoring tools export it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_smoke import SHOTS
from tests.e2e.test_taker import shown, sit_down

pytestmark = pytest.mark.e2e

SETUP = """
import json
import yaml
from app.bank.archive import unpack_zip
from app.bank.qti import export_qti3_package
from app.bank.reading import ImportOptions, read_bank
from app.clock import SystemClock
from app.db import Database
from app.settings import get_settings
from tests.factories import SVG, make_open_session, run_import, zip_of

story = "".join(f"<p>Paragraf {n}: Anina berjalan ke kamar mandi dan mendengar desis pelan "
                f"dari tumpukan koran di bawah meja telepon.</p>" for n in range(1, 25))
story += '<p><img src="media/buaya.svg" alt="buaya" width="120"></p>'
doc = {"format": "cact-itembank/1",
       "bank": {"code": "BACA-E2E", "title": "Bacaan", "kind": "potensi"},
       "passages": [{"code": "KISAH-1", "title": "Malam yang aneh", "text": story}],
       "items": [{"code": f"V{n}", "kind": "single", "construct": "potensi.verbal",
                  **({"passage": "KISAH-1"} if n <= 2 else {}),
                  "stem": f"<p>Pertanyaan {n}: dari mana buaya itu datang?</p>",
                  "options": [{"id": k, "text": f"jawaban {k}", "key": k == "A"}
                              for k in "ABCDE"]} for n in range(1, 4)]}
files = unpack_zip(zip_of({"bank.yaml": yaml.safe_dump(doc).encode(), "media/buaya.svg": SVG}),
                   source="b.zip").files
bank = read_bank(files, source="b.zip", options=ImportOptions())
package = export_qti3_package(bank.items, bank.media, title="Bacaan", passages=bank.passages)
blueprint = '''format: cact-blueprint/1
code: UJI-BP
name: Bacaan
sections:
  - title: Verbal
    time_limit_minutes: 10
    shuffle_items: false
    picks:
      - {bank: QTI-BACA, construct: potensi.verbal, count: 3}
'''
settings = get_settings()
clock = SystemClock()
database = Database(settings.database_url)
with database.transaction() as db:
    run_import(db, clock, "bacaan.zip", package, code="QTI-BACA", title="Bacaan",
               kind="potensi", default_construct="potensi.verbal")
    _, logins = make_open_session(db, clock, secret=settings.resolved_secret(), participants=1,
                                  code="BACA", first=910, blueprint_yaml=blueprint)
print(json.dumps(logins))
"""


def test_the_passage_is_beside_its_items_and_the_question_stays_on_screen(
        page: Page, live_server: str, live_env: dict):
    problems = sit_down(page, live_server, live_env, SETUP)
    item = shown(page)
    passage = item.get_by_test_id("item-passage")
    expect(passage).to_be_visible()
    expect(passage).to_contain_text("Malam yang aneh")
    expect(passage).to_contain_text("Paragraf 1: Anina berjalan")
    # The long passage scrolls inside its box; the question and every option stay visible.
    box = passage.bounding_box()
    assert box and box["height"] < 768 / 2
    assert passage.evaluate("e => e.scrollHeight > e.clientHeight")
    last_option = item.locator("label.choice").last
    expect(last_option).to_be_in_viewport()
    expect(item.locator(".item-stem")).to_contain_text("Pertanyaan 1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    # The passage's image comes from the server (a shared stimulus' image, as bank media).
    image = passage.locator("img")
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle())
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "taker-passage.png"))
    # The second item shows the same passage; the third has none.
    item.locator("a.nav-next").click()
    expect(shown(page).locator(".item-stem")).to_contain_text("Pertanyaan 2")
    expect(shown(page).get_by_test_id("item-passage")).to_contain_text("Malam yang aneh")
    shown(page).locator("a.nav-next").click()
    expect(shown(page).locator(".item-stem")).to_contain_text("Pertanyaan 3")
    expect(shown(page).get_by_test_id("item-passage")).to_have_count(0)
    assert problems == [], problems
