"""Every CSV and XLSX the server writes goes through here, so a spreadsheet never runs a value
as a formula (CSV or formula injection: a roster name like ``=1+2*cmd|' /C calc'!A0`` or a
unit ``+SUM(1)``).

OWASP's guidance: a text value that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is written with a leading apostrophe in a CSV, so a spreadsheet shows it as text. In an
XLSX the cell is stored as text (a string cell is never evaluated; the value stays exact).
Numbers stay numbers: only text is neutralised, so a negative score is still a number.

Numbers are not formatted for a language here. A CSV is for other programs too, so its numbers
keep a point and no grouping ("81.48", whatever the page's language): an Indonesian Excel
that wants "81,48" opens the XLSX. An XLSX cell holds the number itself with a display format
(``0.00``); the spreadsheet shows it with its reader's own decimal sign, so one file serves
both languages. Dates are written as dates, shown as ``yyyy-mm-dd`` (``hh:mm`` with a time).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# XLSX display formats (the cell keeps the exact number; the format only shows it).
INTEGER_FORMAT = "0"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"


class NumberText(str):
    """The text of a number, formatted by the caller ("-1.5"): written as it is, since a
    spreadsheet reads it as the number it is."""


def safe_text(value: str) -> str:
    """``value`` as a spreadsheet shows it literally (a leading apostrophe when needed)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _csv_value(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, NumberText):
        return safe_text(value)
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
             lineterminator: str = "\r\n") -> str:
    """CSV with every text cell neutralised; numbers and empty cells (None) as they are."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow([_csv_value(h) for h in header])
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return out.getvalue()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM (Excel then reads names with accents correctly) and CRLF."""
    return ("\ufeff" + csv_text(header, rows)).encode("utf-8")


def decimal_format(places: int) -> str:
    """The XLSX display format of a number with ``places`` decimals: ``0.00``."""
    return "0." + "0" * places if places > 0 else INTEGER_FORMAT


def xlsx_cell(value: Any) -> tuple[Any, str | None]:
    """A value as an XLSX cell holds it, and its display format (None: the spreadsheet's).

    A Decimal or float is a number shown with 2 decimals, or with as many as it was stored
    with up to 4 (an RTE of 0.9000); a whole Decimal is written as an integer (4, not 4.0) and
    still shown as 4.00 beside the other values of its column. An int is shown without
    decimals. A datetime is written without its time zone: the caller gives it in the
    agency's time zone."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value, None
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        number = int(value) if value == value.to_integral_value() else float(value)
        return number, decimal_format(min(max(places, 2), 4))
    if isinstance(value, float):
        return value, decimal_format(2)
    if isinstance(value, int):
        return value, INTEGER_FORMAT
    if isinstance(value, datetime):
        return value.replace(tzinfo=None), DATETIME_FORMAT
    if isinstance(value, date):
        return value, DATE_FORMAT
    return value, None


def append_row(sheet: Any, values: Sequence[Any]) -> None:
    """``sheet.append(values)``, with every text cell stored as text (openpyxl would store a
    string starting with ``=`` as a live formula) and every number, date and time stored as
    such with its display format (:func:`xlsx_cell`)."""
    cells = [xlsx_cell(v) for v in values]
    sheet.append([value for value, _ in cells])
    for cell, (_, number_format) in zip(sheet[sheet.max_row], cells, strict=False):
        if isinstance(cell.value, str) and cell.data_type != "s":
            cell.data_type = "s"
        elif number_format is not None:
            cell.number_format = number_format
