"""A programme's results as a file (CSV or XLSX): one row per person, the columns of
docs/psychometrics.md ("Programmes"). Audited: the file carries everyone's results."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app import audit
from app.exports import NumberText, append_row, csv_bytes
from app.programmes.models import Programme
from app.programmes.results import PersonRow, ProgrammeResults, programme_results
from app.reports.export import number_text, validity_reason

FORMATS = ("csv", "xlsx")
BASE_COLUMNS = ["nip", "name", "job_group", "grade", "position", "unit", "session", "status",
                "chosen_by", "attempts", "not_scoreable_reasons", "jpm", "category",
                "potensi_score", "potensi_band", "combined_jpm", "nine_box"]


def header(table: ProgrammeResults) -> list[str]:
    return BASE_COLUMNS + [f"level_{c}" for c in table.competencies]


def values(table: ProgrammeResults, row: PersonRow) -> list[Any]:
    achieved = row.achieved
    return [row.nip, row.name, row.job_group, row.grade, row.position, row.unit,
            row.session_code, row.status, row.chosen_by, len(row.candidates),
            "; ".join(validity_reason(r, "id") for r in row.reasons), row.jpm, row.category,
            row.potensi_score, row.potensi_band, row.combined_jpm, row.nine_box,
            *[achieved.get(c) for c in table.competencies]]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (Decimal, float, int)):
        return NumberText(number_text(Decimal(value) if isinstance(value, int) else value))
    return str(value)


def to_csv(table: ProgrammeResults) -> bytes:
    return csv_bytes(header(table), ([_text(v) for v in values(table, row)]
                                     for row in table.rows))


def to_xlsx(table: ProgrammeResults) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.worksheets[0]
    sheet.title = "Hasil program"
    append_row(sheet, header(table))
    for row in table.rows:
        append_row(sheet, values(table, row))  # numbers with their display formats
    for cell in sheet["A"]:  # 18-digit NIPs as text: a number would be rounded
        cell.number_format = "@"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def export_results(db: Session, *, programme: Programme, fmt: str, actor: str,
                   now: datetime) -> bytes:
    """The programme's results in ``fmt`` (csv or xlsx), audited."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use csv or xlsx")
    table = programme_results(db, programme)
    data = to_csv(table) if fmt == "csv" else to_xlsx(table)
    audit.record(db, actor=actor, action="programme.export_results",
                 target=f"programme:{programme.code}", now=now,
                 data={"format": fmt, "rows": len(table.rows)})
    return data
