"""app/spreadsheets.py: every table an admin saves comes back as rows of strings, and every
broken one as a TableError with its key and line, never a csv.Error."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import pytest
from openpyxl import Workbook

from app.bank.parsed import render
from app.spreadsheets import TableError, cell_text, is_workbook, read_rows

ROWS = [["nip", "nama"], ["198504122010011001", "Sérgio Nur’aini"]]


def xlsx(rows, title="Sheet") -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize(("data", "encoding", "delimiter"), [
    ("nip,nama\n198504122010011001,Sérgio Nur’aini\n".encode(), "utf-8", ","),
    ("nip;nama\r\n198504122010011001;Sérgio Nur’aini\r\n".encode("utf-8-sig"), "utf-8-sig", ";"),
    ("nip;nama\r\n198504122010011001;Sérgio Nur’aini\r\n".encode("cp1252"), "cp1252", ";"),
    ("nip\tnama\r\n198504122010011001\tSérgio Nur’aini\r\n".encode("utf-16"), "utf-16", "\t"),
    ("nip,nama\r198504122010011001,Sérgio Nur’aini\r".encode(), "utf-8", ","),
    ("nip;nama\n198504122010011001;Sérgio Nur’aini\n".encode("utf-16-le"), "utf-16-le", ";"),
    ("nip,nama\n198504122010011001,Sérgio Nur’aini\n".encode("utf-16-be"), "utf-16-be", ","),
])
def test_csv_in_every_encoding_line_ending_and_delimiter(data, encoding, delimiter):
    table = read_rows(data)
    assert table.rows == ROWS
    assert (table.format, table.encoding, table.delimiter) == ("csv", encoding, delimiter)


def test_a_quoted_value_keeps_its_delimiter_and_line_break():
    table = read_rows(b'a;b\r"x;y";"two\rlines"\r')
    assert table.rows == [["a", "b"], ["x;y", "two\nlines"]]


def test_xlsx_first_sheet_cells_as_text():
    book = Workbook()
    first = book.active
    first.title = "Peserta"
    first.append(["nip", "score", "level", "date", "empty", "flag"])
    first.append([198504122010011001, 90.9, 3.0, dt.datetime(2025, 1, 2), None, True])  # noqa: DTZ001 - cells have no zone
    first.append([])
    first.append([12345, "  teks  ", 7, dt.date(2024, 12, 31)])
    book.create_sheet("Lain").append(["not read"])
    out = io.BytesIO()
    book.save(out)
    table = read_rows(out.getvalue())
    assert table.format == "xlsx" and table.sheet == "Peserta"
    assert table.rows == [
        ["nip", "score", "level", "date", "empty", "flag"],
        ["1.98504E+17", "90.9", "3", "2025-01-02", "", "TRUE"],
        [],  # an empty row keeps the rows below at their spreadsheet numbers
        ["12345", "  teks  ", "7", "2024-12-31"],
    ]
    assert is_workbook(out.getvalue()) and not is_workbook(b"PK\x03\x04")


@pytest.mark.parametrize(("value", "text"), [
    (None, ""), (0, "0"), (42.0, "42"), (999999999999999.0, "999999999999999"),
    (1e15, "1E+15"), (198504122010011001, "198504122010011001"),
    (1.98504122010011e17, "1.98504E+17"), (2.5e18, "2.5E+18"), (0.25, "0.25"),
    (dt.datetime(2025, 3, 4, 8, 30), "2025-03-04 08:30:00"), (dt.time(7, 5), "07:05:00"),  # noqa: DTZ001
])
def test_cell_text(value, text):
    assert cell_text(value) == text


def located(data: bytes) -> tuple[str, str]:
    with pytest.raises(TableError) as failed:
        read_rows(data)
    for lang in ("id", "en"):  # every key exists with its placeholders in both languages
        assert render(lang, failed.value.key, failed.value.params)
    return failed.value.key, failed.value.location


def test_a_quote_never_closed_is_located_not_a_csv_error():
    before = csv.field_size_limit()
    assert located(b'a,b\n1,2\n3,"x\n' + b"y" * 200 * 1024) == ("table_csv_unclosed_quote",
                                                                  "line 3")
    assert located(b'a,b\r"x,' + b"y" * 2 * 1024 * 1024) == ("table_csv_unclosed_quote",
                                                              "line 2")
    assert located(b'a,b\n1,"x"y\n') == ("table_csv_quote", "line 2")
    assert csv.field_size_limit() >= before


def test_files_that_are_no_table_are_refused_with_the_fix():
    assert located(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old xls or encrypted") == ("table_xls",
                                                                              "")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("bank.yaml", "x")
    assert located(archive.getvalue()) == ("table_not_workbook", "")
    damaged = io.BytesIO()
    with zipfile.ZipFile(damaged, "w") as zipped:
        zipped.writestr("xl/workbook.xml", "<not a workbook")
    assert located(damaged.getvalue()) == ("table_not_workbook", "")
    assert located(b"a,b\n\x81\x8d\x90\n") == ("table_encoding", "")
    assert located(b"a,b\n1\x002\n") == ("table_not_text", "")


def test_empty_files_are_empty_tables():
    assert read_rows(b"").rows == []
    assert read_rows(xlsx([])).rows == []
