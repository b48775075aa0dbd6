"""One reader for the tables admins upload (rosters, job standards, kinerja lists, CSV-shaped
item banks), as Excel and LibreOffice save them.

``read_rows(data)`` gives every row as a list of strings, whatever the file was:

- **.xlsx**, recognised by its content (a zip holding ``xl/workbook.xml``), not by its name:
  the **first sheet** is read with openpyxl (read-only, values only: a formula gives the value
  Excel last calculated). Whole numbers are written as digits; a number of 1e15 or more (an
  18-digit NIP that Excel stored as a number and so already rounded) is written as Excel shows
  it, ``1.98504E+17``, so the importer refuses it at its row and column; dates are
  ``YYYY-MM-DD``; an empty cell is ``""``. An old ``.xls``, a password-protected workbook or
  any zip that is not a workbook is refused with how to save it instead.
- **CSV** in these encodings, tried in this order: UTF-8 with a byte-order mark, UTF-16 with a
  byte-order mark (Excel's "Unicode Text"), UTF-8, then Windows-1252 (Excel's "CSV (Comma
  delimited)" on Windows); text with NUL bytes in every other place and no byte-order mark
  is read as UTF-16 LE or BE. Line endings CR (Excel for Mac), LF and CRLF are all read. The
  delimiter is ``,``, ``;`` (Excel where the decimal separator is a comma, as in Indonesian
  settings) or a tab, whichever the header line holds most of.

A broken file (a quote never closed, a value larger than 1 MiB, bytes that are no text) is a
:class:`TableError` with a translatable key (``problem.<key>`` in the locale files) and the line
it is on; each importer turns it into its located Problem. Nothing here raises ``csv.Error``.
Standard library and openpyxl only; no domain is imported.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any

# A value may be longer than the csv module's default 128 KiB (a long stem in a bank), but
# not unboundedly: a quote never closed must end as a located problem, not swallow the file.
FIELD_LIMIT = 1 << 20
MAX_ROWS = 100_000  # rows with a value; every importer has its own, lower limit
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls and every encrypted Office file


class TableError(Exception):
    """The file cannot be read as a table. ``key`` is ``problem.<key>`` in the locale files,
    ``params`` fill it in; ``location`` is where in the file ("line 7"), or ""."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params
        self.location = f"line {params['line']}" if "line" in params else ""


@dataclass
class Table:
    """The rows (the header first) and what was detected, for messages and the audit."""

    rows: list[list[str]] = field(default_factory=list)
    format: str = "csv"  # "csv" or "xlsx"
    encoding: str = ""  # CSV: utf-8-sig, utf-16, utf-8 or cp1252
    delimiter: str = ""  # CSV: "," ";" or "\t"
    sheet: str = ""  # xlsx: the sheet read


def is_workbook(data: bytes) -> bool:
    """An .xlsx (or .xlsm) workbook, by its content."""
    if not data.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def read_rows(data: bytes) -> Table:
    """Read a CSV or .xlsx upload; raises TableError when it is neither."""
    if data.startswith(_OLE):
        raise TableError(key="table_xls")
    if data.startswith(b"PK"):
        if not is_workbook(data):
            raise TableError(key="table_not_workbook")
        return _read_xlsx(data)
    return _read_csv(data)


# -- xlsx ---------------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell's value as the text an importer reads (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if abs(value) >= 1e15:
            mantissa, exponent = f"{value:.5E}".split("E")
            return f"{mantissa.rstrip('0').rstrip('.')}E{exponent}"
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip("\x00")


def _read_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook  # only .xlsx uploads need it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no default style" and the like: harmless
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - any unreadable workbook is the same refusal
        raise TableError(key="table_not_workbook") from None
    try:
        if not book.worksheets:
            return Table(format="xlsx")
        sheet = book.worksheets[0]
        rows: list[list[str]] = []
        filled = 0
        try:
            for values in sheet.iter_rows(values_only=True):
                row = [cell_text(v) for v in values]
                while row and not row[-1].strip():
                    row.pop()
                if row:
                    filled += 1
                    if filled > MAX_ROWS:
                        raise TableError(key="table_too_many_rows", limit=MAX_ROWS)
                rows.append(row)
        except TableError:
            raise
        except Exception:  # noqa: BLE001 - a damaged sheet inside a valid zip
            raise TableError(key="table_not_workbook") from None
        while rows and not rows[-1]:
            rows.pop()
        return Table(rows=rows, format="xlsx", sheet=sheet.title)
    finally:
        book.close()


# -- CSV ----------------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise TableError(key="table_encoding", byte=exc.start) from None
    head = data[:1000]
    if len(head) >= 4 and head.count(0) * 3 >= len(head):  # UTF-16 saved without its BOM
        encoding = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise TableError(key="table_encoding", byte=exc.start) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise TableError(key="table_encoding", byte=exc.start) from None


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(data: bytes) -> Table:
    text, encoding = _decode(data)
    if "\x00" in text:
        raise TableError(key="table_not_text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    delimiter = _delimiter(text.split("\n", 1)[0])
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    # strict: a quote never closed is an error at the end of the file, not one value that
    # silently holds every row after it.
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    filled = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            reason = str(exc)
            if "end of data" in reason or "field limit" in reason:
                raise TableError(key="table_csv_unclosed_quote", line=start) from None
            raise TableError(key="table_csv_quote", line=start) from None
        if any(v.strip() for v in row):
            filled += 1
            if filled > MAX_ROWS:
                raise TableError(key="table_too_many_rows", limit=MAX_ROWS)
        rows.append(row)
    return Table(rows=rows, format="csv", encoding=encoding, delimiter=delimiter)
