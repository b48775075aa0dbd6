"""The results export's columns beyond scores and levels (docs/psychometrics.md, "The results
export"): each competency's required level and gap, each potensi construct's EAP theta and
SE, and the items administered and answered, overall and per section; checked against values
computed here, independently of the scoring code, for the small session of
test_scoring_service.py (SQLite and PostgreSQL), in the CSV and in the XLSX (numbers stay
numbers)."""

from __future__ import annotations

import csv
import io
import math

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.bank.models import Item
from app.reports.export import export_results, results_table, to_csv
from tests.integration.test_scoring_service import (
    ANSWERS_1,
    build_session,
    irt_available,
    take_test,
)

# Independent of the stored results: levels from the cut scores 3/5/7/9 of the hand
# computation in test_scoring_service.py, required levels from docs/domain.md.
LEVELS_1 = {"integritas": 4, "kerjasama": 1}  # participant 1: raw 8 and 1
REQUIRED = {"administrator": 3, "pengawas": 2}
POTENSI_ITEMS, KOMPETENSI_ITEMS = 5, 4  # the blueprint's two sections


def eap_by_hand(correct: list[int], params: list[tuple[float, float, float]]
                ) -> tuple[float, float]:
    """EAP theta and posterior SD on 61 equally spaced points of [-4, 4], standard normal
    prior, logistic metric (D = 1), as docs/psychometrics.md defines them."""
    points = [-4 + 8 * k / 60 for k in range(61)]
    weights = []
    for x in points:
        likelihood = 1.0
        for u, (a, b, c) in zip(correct, params, strict=True):
            p = c + (1 - c) / (1 + math.exp(-a * (x - b)))
            likelihood *= p if u else 1 - p
        weights.append(likelihood * math.exp(-x * x / 2))
    total = sum(weights)
    theta = sum(x * w for x, w in zip(points, weights, strict=True)) / total
    variance = sum((x - theta) ** 2 * w for x, w in zip(points, weights, strict=True)) / total
    return theta, math.sqrt(variance)


@pytest.fixture
def session_of_three(db, clock):
    """Participant 1 (administrator) answers ANSWERS_1, 2 (pengawas) hands in a blank test,
    3 never logs in."""
    session, logins = build_session(db, clock, participants=3)
    take_test(db, clock, *logins[0], ANSWERS_1)
    take_test(db, clock, *logins[1], {})
    return session, logins


def _numerik_params(db) -> list[tuple[float, float, float]]:
    item = db.scalar(select(Item).where(Item.code == "NUM-1"))
    return [(float(item.irt_a), float(item.irt_b), float(item.irt_c or 0))]


def test_the_csv_has_gaps_theta_and_items_answered(db, clock, session_of_three):
    session, logins = session_of_three
    data, table = export_results(db, session, fmt="csv", actor="cli", now=clock.now())
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    header = reader.fieldnames or []
    for column in ("kompetensi.integritas.required", "kompetensi.integritas.gap",
                   "kompetensi.kerjasama.required", "kompetensi.kerjasama.gap",
                   "potensi.numerik.theta", "potensi.numerik.theta_se",
                   "potensi.figural.theta", "potensi.figural.theta_se",
                   "items_administered", "items_answered",
                   "section_1.items_administered", "section_1.items_answered",
                   "section_2.items_administered", "section_2.items_answered"):
        assert column in header, column
    # the new columns sit with their construct, after its level
    position = header.index("kompetensi.integritas.level")
    assert header[position + 1:position + 3] == ["kompetensi.integritas.required",
                                                 "kompetensi.integritas.gap"]
    assert "potensi.numerik.gap" not in header and "kompetensi.integritas.theta" not in header
    assert "section_3.items_answered" not in header and table.sections == 2
    one, two, three = list(reader)

    for competency, level in LEVELS_1.items():
        assert one[f"kompetensi.{competency}.level"] == str(level)
        assert one[f"kompetensi.{competency}.required"] == str(REQUIRED["administrator"])
        assert one[f"kompetensi.{competency}.gap"] == str(level - REQUIRED["administrator"])
        # the blank test: level 1 everywhere, against the pengawas' 2
        assert two[f"kompetensi.{competency}.gap"] == str(1 - REQUIRED["pengawas"])
    assert one["kompetensi.kerjasama.gap"] == "-2"  # a negative gap stays a number
    answered_1 = [code for code in ANSWERS_1 if code[:3] in ("NUM", "FIG", "MUL", "EMO", "LIK")]
    assert (one["items_administered"], one["items_answered"]) == (
        str(POTENSI_ITEMS + KOMPETENSI_ITEMS), str(len(ANSWERS_1)))
    assert (one["section_1.items_administered"], one["section_1.items_answered"],
            one["section_2.items_administered"], one["section_2.items_answered"]) == (
        str(POTENSI_ITEMS), str(len(answered_1)), str(KOMPETENSI_ITEMS),
        str(len(ANSWERS_1) - len(answered_1)))
    assert (two["items_administered"], two["items_answered"], two["section_2.items_answered"]
            ) == ("9", "0", "0")
    assert three["status"] == "absent"
    assert all(three[c] == "" for c in header if c.endswith(
        (".gap", ".required", ".theta", ".theta_se", "items_answered", "items_administered")))

    assert one["potensi.figural.theta"] == "" and one["potensi.figural.theta_se"] == ""
    if not irt_available():
        return
    params = _numerik_params(db)
    for row, correct in ((one, 1), (two, 0)):  # NUM-1: B is the key; the blank counts wrong
        theta, se = eap_by_hand([correct], params)
        assert float(row["potensi.numerik.theta"]) == pytest.approx(theta, abs=1e-4)
        assert float(row["potensi.numerik.theta_se"]) == pytest.approx(se, abs=1e-4)
    assert float(one["potensi.numerik.theta"]) > 0 > float(two["potensi.numerik.theta"])


def test_the_xlsx_keeps_the_new_columns_as_numbers(db, clock, session_of_three):
    session, logins = session_of_three
    data, _ = export_results(db, session, fmt="xlsx", actor="cli", now=clock.now())
    rows = list(load_workbook(io.BytesIO(data))["Hasil"].iter_rows(values_only=True))
    header, one, two, three = rows
    value = dict(zip(header, one, strict=True))
    assert value["kompetensi.kerjasama.gap"] == -2 and value["kompetensi.integritas.gap"] == 1
    assert value["kompetensi.integritas.required"] == 3
    assert (value["items_administered"], value["items_answered"]) == (9, 8)
    assert (value["section_1.items_answered"], value["section_2.items_answered"]) == (5, 3)
    blank = dict(zip(header, two, strict=True))
    assert blank["kompetensi.integritas.gap"] == -1 and blank["items_answered"] == 0
    absent = dict(zip(header, three, strict=True))
    assert absent["items_answered"] is None and absent["kompetensi.integritas.gap"] is None
    if irt_available():
        theta, se = eap_by_hand([1], _numerik_params(db))
        assert isinstance(value["potensi.numerik.theta"], float)
        assert value["potensi.numerik.theta"] == pytest.approx(theta, abs=1e-9)
        assert value["potensi.numerik.theta_se"] == pytest.approx(se, abs=1e-9)


def test_a_running_attempt_shows_its_items_answered_so_far(db, clock):
    session, logins = build_session(db, clock, participants=1)
    take_test(db, clock, *logins[0], {"NUM-1": "B", "INT-1": "A"}, submit=False)
    text = to_csv(results_table(db, session)).decode("utf-8-sig")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["status"] == "in_progress" and row["attempt_state"] == "active"
    assert row["total_score"] == ""
    assert (row["items_administered"], row["items_answered"]) == ("9", "2")
    assert row["section_1.items_answered"] == "1" and row["section_2.items_answered"] == "1"
