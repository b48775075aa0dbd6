"""Numbers and dates as each language writes them (app/formatting.py), where a problem is in
the reader's language (app/problem_text.py), the XLSX cell of a value (app/exports.py) and the
name of an item kind (the kind filter of app/web.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from app.bank.models import ItemKind
from app.exports import append_row, xlsx_cell
from app.formatting import (
    format_date,
    format_datetime,
    format_decimal,
    format_percent,
    format_time,
)
from app.problem_text import location_text
from app.web import templates

# 18:07:05 UTC on 4 December is 01:07 on 5 December in Jakarta (UTC+7).
EVENING_UTC = datetime(2026, 12, 4, 18, 7, 5, tzinfo=UTC)


@pytest.mark.parametrize(("value", "places", "indonesian", "english"), [
    (Decimal("81.48"), None, "81,48", "81.48"),
    (Decimal("5.000"), None, "5", "5"),  # a stored scale does not show as trailing zeros
    (Decimal("1234.5"), None, "1.234,5", "1,234.5"),  # grouping
    (87.5, 2, "87,50", "87.50"),
    (Decimal("0.666"), 2, "0,67", "0.67"),
    (-0.5, 1, "-0,5", "-0.5"),
    (1234567, None, "1.234.567", "1,234,567"),
])
def test_decimals_in_both_languages(value, places, indonesian, english):
    assert format_decimal(value, "id", places) == indonesian
    assert format_decimal(value, "en", places) == english


def test_a_value_is_formatted_by_its_own_type_whatever_was_formatted_before():
    # the formatted values are cached; equal values of another type keep their own rule
    assert format_decimal(Decimal("2.5"), "id") == "2,5"
    assert format_decimal(2.5, "id") == "2,5" and format_decimal(2.5, "id", 2) == "2,50"
    assert format_decimal(Decimal("1.2345"), "en") == "1.2345"  # a Decimal: all its digits
    assert format_decimal(1.2345, "en") == "1.234"  # a float: at most three
    assert format_decimal(5, "en") == format_decimal(5.0, "en") == "5"


def test_a_form_value_has_no_grouping_so_the_server_reads_it_back():
    assert format_decimal(Decimal("1000.5"), "id", group=False) == "1000,5"
    assert format_decimal(Decimal("1000.5"), "en", group=False) == "1000.5"


def test_percent_takes_points_of_0_to_100():
    assert format_percent(Decimal("81.48"), "id") == "81,48%"
    assert format_percent(Decimal("81.48"), "en") == "81.48%"
    assert format_percent(Decimal("83.3"), "id", 2) == "83,30%"
    assert format_percent(100, "en") == "100%"


def test_dates_in_the_agency_time_zone():
    assert format_date(EVENING_UTC, "id", "Asia/Jakarta") == "5 Des 2026"
    assert format_date(EVENING_UTC, "en", "Asia/Jakarta") == "Dec 5, 2026"
    assert format_date(EVENING_UTC, "id", "UTC") == "4 Des 2026"  # the zone decides the day
    assert format_date(EVENING_UTC, "id", "Asia/Jakarta", style="long") == "5 Desember 2026"
    assert format_date(EVENING_UTC, "en", "Asia/Jakarta", style="long") == "December 5, 2026"
    assert format_date(date(2026, 5, 12), "id") == "12 Mei 2026"  # a plain date as it is


def test_times_and_datetimes_on_the_24_hour_clock():
    assert format_time(EVENING_UTC, "id", "Asia/Jakarta") == "01.07"
    assert format_time(EVENING_UTC, "en", "Asia/Jakarta") == "01:07"
    assert format_time(EVENING_UTC, "id", ZoneInfo("Asia/Jakarta"), seconds=True) == "01.07.05"
    assert format_datetime(EVENING_UTC, "id", "Asia/Jakarta") == "5 Des 2026 01.07"
    assert format_datetime(EVENING_UTC, "en", "Asia/Jakarta") == "Dec 5, 2026, 01:07"
    assert format_datetime(EVENING_UTC, "en", "Asia/Makassar") == "Dec 5, 2026, 02:07"


def test_an_unknown_language_is_indonesian():
    assert format_decimal(Decimal("1.5"), "fr") == "1,5"


@pytest.mark.parametrize(("location", "indonesian", "english"), [
    ("row 2, column nip (A)", "baris 2, kolom nip (A)", "row 2, column nip (A)"),
    ("line 1", "baris 1", "line 1"),
    ("line 3, column 7", "baris 3, kolom 7", "line 3, column 7"),
    ("row 1, column E", "baris 1, kolom E", "row 1, column E"),
    ("sheet Data, row 4", "lembar Data, baris 4", "sheet Data, row 4"),
    ("section 2", "bagian 2", "section 2"),  # a blueprint's section without a line
    # anything else is shown as it is: a QTI element path, a half-known location, nothing
    ("/assessmentItem/itemBody", "/assessmentItem/itemBody", "/assessmentItem/itemBody"),
    ("row 2, cell B", "row 2, cell B", "row 2, cell B"),
    ("", "", ""),
])
def test_problem_locations_in_both_languages(location, indonesian, english):
    assert location_text(location, "id") == indonesian
    assert location_text(location, "en") == english


def test_xlsx_cells_are_numbers_and_dates_with_a_display_format():
    assert xlsx_cell(Decimal("83.33")) == (83.33, "0.00")
    assert xlsx_cell(Decimal("4")) == (4, "0.00")  # an integer value in a decimal column
    assert xlsx_cell(Decimal("0.9000")) == (0.9, "0.0000")  # as many places as stored, to 4
    assert xlsx_cell(7) == (7, "0")
    assert xlsx_cell(True) == (True, None) and xlsx_cell("=1+2") == ("=1+2", None)
    jakarta = EVENING_UTC.astimezone(ZoneInfo("Asia/Jakarta"))
    # the wall-clock time of the zone the caller chose (a spreadsheet has no time zones)
    wall_clock = jakarta.replace(tzinfo=None)
    assert wall_clock.hour == 1
    assert xlsx_cell(jakarta) == (wall_clock, "yyyy-mm-dd hh:mm")
    assert xlsx_cell(date(2026, 12, 5)) == (date(2026, 12, 5), "yyyy-mm-dd")

    sheet = Workbook().active
    append_row(sheet, ["=cmd", Decimal("81.48"), 3, None])
    text, score, count, empty = sheet[1]
    assert (text.data_type, text.value) == ("s", "=cmd")  # text stays text, never a formula
    assert (score.data_type, score.value, score.number_format) == ("n", 81.48, "0.00")
    assert (count.value, count.number_format) == (3, "0")
    assert empty.value is None


@pytest.mark.parametrize(("lang", "names"), [
    ("id", ["pilihan tunggal", "bobot", "pilihan ganda kompleks", "skala Likert"]),
    ("en", ["single choice", "weighted options", "multiple response", "Likert scale"]),
])
def test_item_kinds_by_their_names(lang, names):
    kinds = templates.env.from_string("{% for k in kinds %}{{ k|kind }}|{% endfor %}")
    shown = kinds.render(lang=lang, kinds=list(ItemKind)).split("|")[:-1]
    assert shown == names
    assert kinds.render(lang=lang, kinds=["essay"]) == "essay|"  # no name yet: as it is
