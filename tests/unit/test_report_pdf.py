"""The individual report PDF: a valid A4 PDF whose text (read back with pypdf) holds the
identity, every competency and the words of the chosen language."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfReader

from app.reports.individual import (
    CompetencyRow,
    IndividualReport,
    PotensiRow,
    format_number,
    individual_report_pdf,
)

COMPETENCIES = [
    ("Integritas", 3, 4, 1), ("Kerjasama", 3, 3, 0), ("Komunikasi", 3, 2, -1),
    ("Orientasi pada Hasil", 3, 3, 0), ("Pelayanan Publik", 3, 4, 1),
    ("Pengembangan Diri dan Orang Lain", 3, 2, -1), ("Mengelola Perubahan", 3, 3, 0),
    ("Pengambilan Keputusan", 3, 2, -1), ("Perekat Bangsa", 3, 3, 0),
]


def report(**changes) -> IndividualReport:
    values = {
        "name": "Siti Nurhaliza, S.Sos.", "nip": "198001012005011001",
        "job_group": "Administrator", "position": "Kepala Bagian Umum",
        "unit": "Sekretariat Daerah", "session": "ASN-2026-01", "date": date(2026, 5, 12),
        "competencies": COMPETENCIES,
        "potensi": [PotensiRow("Kemampuan intelektual", Decimal("78.5"), "Menengah", 0.42,
                               0.31),
                    ("Kecerdasan emosional", 82, "Tinggi")],
        "jpm": Decimal("88.89"), "category": "Cukup Optimal",
        "strengths": ["Integritas", "Pelayanan Publik"],
        "development": ["Komunikasi", "Pengambilan Keputusan"],
        "recommendation": "Mengikuti pelatihan komunikasi efektif.", "nine_box": 7,
        "nine_box_label": "Dipertahankan, kelompok suksesi"}
    return IndividualReport(**{**values, **changes})


def text_of(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_holds_identity_and_every_competency():
    data = individual_report_pdf(report())
    assert data.startswith(b"%PDF")
    reader, text = text_of(data)
    assert len(reader.pages) >= 1
    assert reader.pages[0].mediabox.width == pytest.approx(595.28, abs=0.1)  # A4 portrait
    for expected in ("Siti Nurhaliza, S.Sos.", "198001012005011001", "Administrator",
                     "Kepala Bagian Umum", "Sekretariat Daerah", "ASN-2026-01", "12 Mei 2026"):
        assert expected in text, expected
    for name, *_ in COMPETENCIES:
        assert name in text, name
    assert "Laporan Hasil Asesmen Individu" in text and "Psikogram kompetensi" in text
    # A percentage as Indonesian writes it (CLDR: decimal comma, % without a space)
    assert "88,89%" in text and "Cukup Optimal" in text
    assert "Kemampuan intelektual" in text and "0,42 (0,31)" in text
    assert "Kotak 7" in text and "Mengikuti pelatihan komunikasi efektif." in text
    assert "+1" in text and "-1" in text  # gaps with their sign


def test_english_labels():
    _, text = text_of(individual_report_pdf(report(), lang="en"))
    for label in ("Individual Assessment Report", "Competency psychogram", "Required",
                  "Achieved", "Strengths", "Development areas", "Recommendation", "Box 7",
                  "May 12, 2026", "Medium (Menengah)"):
        assert label in text, label
    assert "88.89%" in text
    assert "Psikogram" not in text and "Kekuatan" not in text
    assert "Siti Nurhaliza, S.Sos." in text and "Integritas" in text


def test_optional_parts_and_edges():
    minimal = report(competencies=[], potensi=[], jpm=None, category="", strengths=[],
                     development=[], recommendation="", nine_box=None)
    _, text = text_of(individual_report_pdf(minimal))
    assert "Tidak ada kompetensi yang diukur." in text
    assert "Aspek potensi" not in text and "Peta talenta" not in text
    # Not measured, names beyond the core fonts, very long names, many rows: still a PDF.
    many = [(f"Kompetensi tambahan nomor {n} dengan nama yang sangat panjang sekali", 5,
             None if n % 3 == 0 else 1 + n % 5, None if n % 3 == 0 else (1 + n % 5) - 5)
            for n in range(40)]
    data = individual_report_pdf(report(name="Đặng Thị Ngọc Ánh " * 4, competencies=many))
    reader, text = text_of(data)
    assert len(reader.pages) >= 2
    assert "Dang Thi Ngoc Ánh" in text  # transliterated where cp1252 has no letter
    with pytest.raises(ValueError):
        individual_report_pdf(report(), lang="fr")


def test_rows_accept_tuples_and_named_tuples():
    rows = [CompetencyRow("Integritas", 3, 3, 0), ("Kerjasama", 2, 1, -1)]
    _, text = text_of(individual_report_pdf(report(competencies=rows)))
    assert "Integritas" in text and "Kerjasama" in text


def test_number_format():
    assert format_number(Decimal("87.5"), "id") == "87,50"
    assert format_number(87.5, "en") == "87.50"
    assert format_number(None, "id") == "-"
