"""No export runs a participant's name or unit as a spreadsheet formula (CSV/formula
injection): the results CSV and XLSX, the login tokens CSV and the item analysis CSV all go
through app/exports.py."""

from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.exports import NumberText, csv_text, safe_text
from app.sessions.models import Participant
from app.sessions.roster import TokenRow, tokens_to_csv
from tests.conftest import staff_login
from tests.factories import make_open_session

PAYLOADS = ["=1+2*cmd|' /C calc'!A0", "@SUM(A1)", "+SUM(1)", "-2+3", "\t=1", "\r=1"]


def test_text_that_starts_a_formula_is_neutralised_and_numbers_stay_numbers():
    for payload in PAYLOADS:
        assert safe_text(payload) == "'" + payload
    assert safe_text("Siti Rahma") == "Siti Rahma"
    text = csv_text(["name", "score", "gap"],
                    [[PAYLOADS[0], 12.5, NumberText("-1.5")], ["Budi", -2, None]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["'" + PAYLOADS[0], "12.5", "-1.5"]  # the gap is a number, as it was
    assert rows[2] == ["Budi", "-2", ""]


def test_the_tokens_csv_neutralises_names():
    text = tokens_to_csv([TokenRow("198001012005011001", PAYLOADS[0], "ABCD2345", "")])
    assert list(csv.reader(io.StringIO(text)))[1] == [
        "198001012005011001", "'" + PAYLOADS[0], "ABCD2345"]


@pytest.fixture
def hostile_roster(database, settings, clock, client, make_user):
    """An open session whose participants are named and placed like an attacker would."""
    with database.transaction() as db:
        session, _ = make_open_session(db, clock, secret=settings.resolved_secret(),
                                       participants=3, code="INJ")
        people = list(db.scalars(select(Participant).order_by(Participant.nip)))
        people[0].name, people[0].unit = PAYLOADS[0], PAYLOADS[2]
        people[1].name, people[1].unit = PAYLOADS[1], "Dinas Kesehatan"
        people[2].name = PAYLOADS[3]
    assert staff_login(client, "admin", make_user("admin")).status_code == 303
    return session.code


def test_the_results_csv_shows_every_payload_as_text(client, hostile_roster):
    response = client.get(f"/admin/sessions/{hostile_roster}/results.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 3
    cells = [value for row in rows for value in row.values() if value]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], cells
    for payload in (PAYLOADS[0], PAYLOADS[1], PAYLOADS[2], PAYLOADS[3]):
        assert "'" + payload in cells, payload


def test_the_results_xlsx_stores_every_payload_as_text(client, hostile_roster):
    response = client.get(f"/admin/sessions/{hostile_roster}/results.xlsx")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as book:
        for name in book.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in book.read(name), name  # no formula anywhere
    sheet = load_workbook(io.BytesIO(response.content))["Hasil"]
    texts = {cell.value: cell.data_type for row in sheet.iter_rows() for cell in row
             if isinstance(cell.value, str)}
    for payload in (PAYLOADS[0], PAYLOADS[1], PAYLOADS[2], PAYLOADS[3]):
        assert texts.get(payload) == "s", (payload, texts)  # kept exactly, as text


def test_the_item_analysis_csv_neutralises_text_and_keeps_numbers():
    from app.analysis.service import CSV_HEADER, to_csv

    class Stat:  # the fields the CSV reads from an item's statistics
        code, scale, kind, n, mean, max_score, p, r, blanks = (
            "=HYPERLINK(\"http://x\")", "@verbal", "single", 12, 0.5, 1, 0.25, -0.125, 0)
        options = ()
        flags = ("negative_r",)

    data = to_csv(None, [Stat()]).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    assert rows[0] == CSV_HEADER
    row = dict(zip(CSV_HEADER, rows[1], strict=True))
    assert row[CSV_HEADER[0]] == "'=HYPERLINK(\"http://x\")"
    assert row[CSV_HEADER[1]] == "'@verbal"
    assert Decimal(rows[1][7]) == Decimal("-0.125")  # a negative r stays a number
