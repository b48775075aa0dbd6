"""Every CSV and XLSX the server writes goes through here, so a spreadsheet never runs a value
as a formula (CSV or formula injection: a roster name like ``=1+2*cmd|' /C calc'!A0`` or a
unit ``+SUM(1)``).

OWASP's guidance: a text value that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is written with a leading apostrophe in a CSV, so a spreadsheet shows it as text. In an
XLSX the cell is stored as text (a string cell is never evaluated; the value stays exact).
Numbers stay numbers: only text is neutralised, so a negative score is still a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


def append_row(sheet: Any, values: Sequence[Any]) -> None:
    """``sheet.append(values)``, with every text cell stored as text: openpyxl would store a
    string starting with ``=`` as a live formula."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str) and cell.data_type != "s":
            cell.data_type = "s"
