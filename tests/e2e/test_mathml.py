"""A formula in an item reaches the taker as MathML and Chromium lays it out: the fraction's
numerator sits above its denominator, the square root has its radical. The item is imported
as QTI with MathML in its namespace, as authoring tools write it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_smoke import SHOTS
from tests.e2e.test_taker import shown, sit_down

pytestmark = pytest.mark.e2e

SETUP = """
import json
from pathlib import Path
from app.clock import SystemClock
from app.db import Database
from app.settings import get_settings
from tests.factories import make_open_session, run_import
settings = get_settings()
clock = SystemClock()
single = (Path("tests/fixtures/qti/qti21_single.xml").read_bytes()
          .replace(b"<p>Perhatikan deret berikut.</p>",
                   b'<p>Hitung <m:math xmlns:m="http://www.w3.org/1998/Math/MathML">'
                   b"<m:mfrac><m:mn>1</m:mn><m:mn>2</m:mn></m:mfrac><m:mo>+</m:mo>"
                   b"<m:msqrt><m:mn>9</m:mn></m:msqrt></m:math></p>"))
blueprint = '''format: cact-blueprint/1
code: UJI-BP
name: Rumus
sections:
  - title: Numerik
    time_limit_minutes: 10
    picks:
      - {bank: QTI-RUMUS, construct: potensi.numerik, count: 1}
'''
database = Database(settings.database_url)
with database.transaction() as db:
    run_import(db, clock, "rumus.xml", single, code="QTI-RUMUS", title="Rumus",
               kind="potensi", default_construct="potensi.numerik")
    _, logins = make_open_session(db, clock, secret=settings.resolved_secret(), participants=1,
                                  code="RUMUS", first=900, blueprint_yaml=blueprint)
print(json.dumps(logins))
"""


def test_a_fraction_and_a_square_root_render(page: Page, live_server: str, live_env: dict):
    problems = sit_down(page, live_server, live_env, SETUP)
    item = shown(page)
    formula = item.locator("math")
    expect(formula).to_be_visible()
    numerator = item.locator("math mfrac > mn").nth(0).bounding_box()
    denominator = item.locator("math mfrac > mn").nth(1).bounding_box()
    assert numerator and denominator
    assert numerator["y"] + numerator["height"] <= denominator["y"] + 1  # stacked, not inline
    root = item.locator("math msqrt").bounding_box()
    nine = item.locator("math msqrt > mn").bounding_box()
    assert root and nine and root["width"] > nine["width"]  # the radical sign takes room
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "taker-mathml.png"))
    assert problems == [], problems
