"""The individual assessment report as an A4 PDF: identity, psychogram, potensi aspects, JPM
and category, strengths and development areas, recommendation and nine-box placement
(docs/domain.md, "The individual report").

fpdf2 draws it (pure Python, no system libraries, as for the login cards), with the PDF core
fonts: they need no font files on an offline lab server, and they cover Indonesian; other
accents are transliterated by :func:`app.sessions.cards.core_font_text`. Text is Indonesian
by default and English with ``lang="en"``; the words are in :data:`LABELS` so that the PDF
does not depend on the web layer. The report carries plain data only: whoever builds it
(the results pages, the CLI) decides where the numbers come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import NamedTuple

from fpdf import FPDF

from app import formatting
from app.sessions.cards import core_font_text


class CompetencyRow(NamedTuple):
    name: str
    required: int
    achieved: int | None  # None: not measured in this test
    gap: int | None
    sem: float | None = None  # standard error of measurement, points of the 0-100 score
    low: int | None = None  # the level of the score minus one SEM
    high: int | None = None  # ... plus one SEM


class PotensiRow(NamedTuple):
    name: str
    score: float | Decimal  # 0-100
    band: str  # Tinggi / Menengah / Rendah
    theta: float | None = None
    theta_se: float | None = None
    sem: float | None = None  # points of the 0-100 score


@dataclass(frozen=True)
class IndividualReport:
    name: str
    nip: str
    job_group: str
    position: str
    unit: str
    session: str
    date: date | datetime
    competencies: Sequence[CompetencyRow | tuple] = ()
    potensi: Sequence[PotensiRow | tuple] = ()
    jpm: Decimal | float | None = None
    category: str = ""
    strengths: Sequence[str] = ()
    development: Sequence[str] = ()
    recommendation: str = ""
    nine_box: int | None = None
    nine_box_label: str = ""
    agency: str = ""  # printed in the header when given
    extra: dict[str, str] = field(default_factory=dict)  # more identity lines (label: value)


LABELS: dict[str, dict[str, str]] = {
    "id": {
        "title": "Laporan Hasil Asesmen Individu",
        "confidential": "RAHASIA - hanya untuk keperluan pengembangan pegawai",
        "identity": "Identitas",
        "name": "Nama", "nip": "NIP", "job_group": "Kelompok jabatan", "position": "Jabatan",
        "unit": "Unit kerja", "session": "Sesi", "date": "Tanggal",
        "psychogram": "Psikogram kompetensi",
        "competency": "Kompetensi", "required": "Standar", "achieved": "Capaian", "gap": "Gap",
        "legend_required": "Level standar jabatan", "legend_achieved": "Level capaian",
        "not_measured": "tidak diukur",
        "potensi": "Aspek potensi", "aspect": "Aspek", "score": "Skor (0-100)",
        "band": "Kategori", "theta": "Theta (SE)",
        "match": "Kesesuaian jabatan", "jpm": "Job Person Match (JPM)",
        "category": "Kategori",
        "strengths": "Kekuatan", "development": "Area pengembangan", "none": "-",
        "recommendation": "Rekomendasi",
        "ninebox": "Peta talenta (nine-box)", "box": "Kotak {box}",
        "page": "Halaman {page} dari {pages}",
        "no_competencies": "Tidak ada kompetensi yang diukur.",
        "sem": "SEM",
        "legend_range": "Rentang level pada skor ± 1 SEM",
        "sem_help": ("SEM: galat baku pengukuran dalam poin skor 0-100 tempat level "
                     "dipotong."),
    },
    "en": {
        "title": "Individual Assessment Report",
        "confidential": "CONFIDENTIAL - for staff development only",
        "identity": "Identity",
        "name": "Name", "nip": "NIP (civil servant no.)", "job_group": "Job group",
        "position": "Position", "unit": "Unit", "session": "Session", "date": "Date",
        "psychogram": "Competency psychogram",
        "competency": "Competency", "required": "Required", "achieved": "Achieved",
        "gap": "Gap",
        "legend_required": "Level required for the job", "legend_achieved": "Level achieved",
        "not_measured": "not measured",
        "potensi": "Potential aspects", "aspect": "Aspect", "score": "Score (0-100)",
        "band": "Band", "theta": "Theta (SE)",
        "match": "Job fit", "jpm": "Job Person Match (JPM)", "category": "Category",
        "strengths": "Strengths", "development": "Development areas", "none": "-",
        "recommendation": "Recommendation",
        "ninebox": "Talent map (nine-box)", "box": "Box {box}",
        "page": "Page {page} of {pages}",
        "no_competencies": "No competency was measured.",
        "sem": "SEM",
        "legend_range": "Level range at the score ± 1 SEM",
        "sem_help": ("SEM: standard error of measurement, in points of the 0-100 score the "
                     "levels are cut on."),
    },
}
# Potensi bands are stored in Indonesian (the scoring convention); English shows both.
BANDS_EN = {"Tinggi": "High", "Menengah": "Medium", "Rendah": "Low"}

MARGIN = 15.0
PAGE_W = 210.0
CONTENT_W = PAGE_W - 2 * MARGIN
BRAND = (20, 40, 80)
REQUIRED_FILL = (200, 212, 228)
ACHIEVED = (176, 58, 46)
RANGE = (232, 178, 170)  # the ±1 SEM level range under the achieved dot
LEVELS = 5


def format_date(value: date | datetime, lang: str) -> str:
    """The day as the language writes it in full ("5 Desember 2026", "December 5, 2026"), in
    the time zone ``value`` carries (the caller's: the agency's)."""
    zone = value.tzinfo if isinstance(value, datetime) else None
    return formatting.format_date(value, lang, zone, style="long")


def format_number(value: float | Decimal | None, lang: str, places: int = 2) -> str:
    """2 decimals as the language writes them (87,50 in Indonesian, 87.50 in English)."""
    if value is None:
        return "-"
    return formatting.format_decimal(value, lang, places)


class _ReportPDF(FPDF):
    def __init__(self, words: dict[str, str], footer_left: str, lang: str = "id") -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.words = words
        self.lang = lang
        self.footer_left = footer_left
        self._base_size = 9.5

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=7.5)
        self.set_text_color(110, 110, 110)
        self.cell(CONTENT_W / 2, 5, core_font_text(self.footer_left))
        self.cell(CONTENT_W / 2, 5, self.words["page"].format(page=self.page_no(),
                                                              pages="{nb}"), align="R")
        self.set_text_color(0, 0, 0)

    def text_cell(self, w: float, h: float, text: str, **kwargs) -> None:
        """A cell that shrinks its text to fit rather than running into the next column."""
        text = core_font_text(str(text))
        size = self.font_size_pt
        while size > 7 and self.get_string_width(text) > w - 2:
            size -= 0.5
            self.set_font_size(size)
        if self.get_string_width(text) > w - 2:  # still too long at the smallest size
            while text and self.get_string_width(text + "...") > w - 2:
                text = text[:-1]
            text = text.rstrip() + "..."
        self.cell(w, h, text, **kwargs)
        self.set_font_size(self._base_size)

    def use_font(self, style: str = "", size: float = 9.5) -> None:
        self.set_font("Helvetica", style=style, size=size)
        self._base_size = size

    def heading(self, text: str) -> None:
        if self.will_page_break(16):
            self.add_page()
        self.ln(3)
        self.use_font("B", 11.5)
        self.set_text_color(*BRAND)
        self.cell(CONTENT_W, 7, core_font_text(text), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(*BRAND)
        self.set_line_width(0.4)
        self.line(MARGIN, self.get_y(), MARGIN + CONTENT_W, self.get_y())
        self.set_text_color(0, 0, 0)
        self.ln(2)
        self.use_font()


def _header(pdf: _ReportPDF, report: IndividualReport, lang: str) -> None:
    words = pdf.words
    pdf.set_fill_color(*BRAND)
    pdf.rect(0, 0, PAGE_W, 24, style="F")
    pdf.set_text_color(255, 255, 255)
    pdf.set_xy(MARGIN, 6)
    pdf.use_font("B", 15)
    pdf.cell(CONTENT_W, 7, core_font_text(words["title"]), new_x="LMARGIN", new_y="NEXT")
    pdf.use_font("", 9)
    subtitle = " - ".join(p for p in (report.agency, report.session,
                                      format_date(report.date, lang)) if p)
    pdf.text_cell(CONTENT_W, 6, subtitle, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_y(28)


def _identity(pdf: _ReportPDF, report: IndividualReport, lang: str) -> None:
    words = pdf.words
    pdf.heading(words["identity"])
    rows = [(words["name"], report.name), (words["nip"], report.nip),
            (words["job_group"], report.job_group), (words["position"], report.position),
            (words["unit"], report.unit), (words["session"], report.session),
            (words["date"], format_date(report.date, lang)), *report.extra.items()]
    for label, value in rows:
        pdf.use_font("", 9.5)
        pdf.set_text_color(80, 80, 80)
        pdf.text_cell(45, 5.5, label)
        pdf.set_text_color(0, 0, 0)
        pdf.use_font("B" if label == words["name"] else "", 9.5)
        pdf.text_cell(CONTENT_W - 45, 5.5, f": {value or '-'}", new_x="LMARGIN", new_y="NEXT")
    pdf.use_font()


NAME_W, NUM_W, GAP_W, SEM_W = 50.0, 13.0, 13.0, 12.0
LEVEL_W = (CONTENT_W - NAME_W - 2 * NUM_W - GAP_W - SEM_W) / LEVELS
ROW_H = 7.0
CHART_X = MARGIN + NAME_W + 2 * NUM_W


def _psychogram(pdf: _ReportPDF, rows: list[CompetencyRow]) -> None:
    """Required level as a shaded bar, achieved level as a dot, the dots joined into the
    profile line that gives a psychogram its shape; numbers beside the chart. The chart is
    drawn at computed positions, so it is laid out in page-sized blocks (with their own
    header row) instead of letting an automatic page break cut it."""
    words = pdf.words
    if pdf.will_page_break(16 + ROW_H * (min(len(rows), 9) + 1) + 8):
        pdf.add_page()  # keep the heading with (most of) the chart
    pdf.heading(words["psychogram"])
    if not rows:
        pdf.cell(CONTENT_W, 6, core_font_text(words["no_competencies"]), new_x="LMARGIN",
                 new_y="NEXT")
        return
    remaining = list(rows)
    while remaining:
        room = int((pdf.page_break_trigger - pdf.get_y() - 8) // ROW_H) - 1  # minus header
        if room < 3:
            pdf.add_page()
            continue
        block, remaining = remaining[:room], remaining[room:]
        _psychogram_block(pdf, block)
    _psychogram_legend(pdf, any(r.sem is not None for r in rows))


def _psychogram_block(pdf: _ReportPDF, rows: list[CompetencyRow]) -> None:
    words = pdf.words
    pdf.use_font("B", 8.5)
    pdf.set_fill_color(234, 238, 243)
    pdf.text_cell(NAME_W, ROW_H, words["competency"], fill=True)
    pdf.text_cell(NUM_W, ROW_H, words["required"], fill=True, align="C")
    pdf.text_cell(NUM_W, ROW_H, words["achieved"], fill=True, align="C")
    for level in range(1, LEVELS + 1):
        pdf.cell(LEVEL_W, ROW_H, str(level), fill=True, align="C")
    pdf.text_cell(GAP_W, ROW_H, words["gap"], fill=True, align="C")
    pdf.text_cell(SEM_W, ROW_H, words["sem"], fill=True, align="C", new_x="LMARGIN",
                  new_y="NEXT")
    top = pdf.get_y()
    points: list[tuple[float, float]] = []
    ranges: list[tuple[float, float, float]] = []  # x from, x to, y of each ±1 SEM range
    pdf.use_font("", 9)
    for index, row in enumerate(rows):
        y = top + index * ROW_H
        if index % 2:
            pdf.set_fill_color(247, 248, 250)
            pdf.rect(MARGIN, y, CONTENT_W, ROW_H, style="F")
        if row.required:
            pdf.set_fill_color(*REQUIRED_FILL)
            pdf.rect(CHART_X, y + 1.5, LEVEL_W * min(row.required, LEVELS), ROW_H - 3,
                     style="F")
        pdf.set_xy(MARGIN, y)
        pdf.text_cell(NAME_W, ROW_H, row.name)
        pdf.cell(NUM_W, ROW_H, str(row.required), align="C")
        pdf.cell(NUM_W, ROW_H, "-" if row.achieved is None else str(row.achieved), align="C")
        pdf.set_x(CHART_X + LEVELS * LEVEL_W)
        if row.gap is None:
            pdf.cell(GAP_W, ROW_H, "-", align="C")
        else:
            pdf.set_text_color(*(ACHIEVED if row.gap < 0 else (30, 110, 50)))
            pdf.use_font("B", 9)
            pdf.cell(GAP_W, ROW_H, f"{row.gap:+d}" if row.gap else "0", align="C")
            pdf.use_font("", 9)
            pdf.set_text_color(0, 0, 0)
        pdf.set_x(CHART_X + LEVELS * LEVEL_W + GAP_W)
        pdf.cell(SEM_W, ROW_H, "-" if row.sem is None else format_number(row.sem, pdf.lang, 1),
                 align="C")
        if row.low is not None and row.high is not None and row.high > row.low:
            low, high = max(1, min(row.low, LEVELS)), max(1, min(row.high, LEVELS))
            ranges.append((CHART_X + (low - 0.5) * LEVEL_W, CHART_X + (high - 0.5) * LEVEL_W,
                           y + ROW_H / 2))
        if row.achieved:
            level = max(1, min(row.achieved, LEVELS))
            points.append((CHART_X + (level - 0.5) * LEVEL_W, y + ROW_H / 2))
    bottom = top + len(rows) * ROW_H
    # Grid lines between the levels, then the profile on top of them.
    pdf.set_draw_color(190, 198, 208)
    pdf.set_line_width(0.2)
    for level in range(LEVELS + 1):
        x = CHART_X + level * LEVEL_W
        pdf.line(x, top, x, bottom)
    pdf.line(MARGIN, bottom, MARGIN + CONTENT_W, bottom)
    pdf.set_draw_color(*RANGE)
    pdf.set_line_width(1.2)
    for x1, x2, y in ranges:
        pdf.line(x1, y, x2, y)
    pdf.set_draw_color(*ACHIEVED)
    pdf.set_fill_color(*ACHIEVED)
    pdf.set_line_width(0.6)
    for (x1, y1), (x2, y2) in pairwise(points):
        pdf.line(x1, y1, x2, y2)
    for x, y in points:
        pdf.ellipse(x - 1.4, y - 1.4, 2.8, 2.8, style="F")
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    pdf.set_xy(MARGIN, bottom)


def _psychogram_legend(pdf: _ReportPDF, with_sem: bool) -> None:
    words = pdf.words
    pdf.set_y(pdf.get_y() + 2)
    pdf.set_fill_color(*REQUIRED_FILL)
    pdf.rect(MARGIN, pdf.get_y() + 1.2, 8, 3, style="F")
    pdf.set_x(MARGIN + 10)
    pdf.use_font("", 8)
    pdf.cell(55, 5.5, core_font_text(words["legend_required"]))
    x = pdf.get_x()
    pdf.set_fill_color(*ACHIEVED)
    pdf.ellipse(x + 2, pdf.get_y() + 1.35, 2.8, 2.8, style="F")
    pdf.set_x(x + 7)
    if not with_sem:
        pdf.cell(55, 5.5, core_font_text(words["legend_achieved"]), new_x="LMARGIN",
                 new_y="NEXT")
        pdf.use_font()
        return
    pdf.cell(45, 5.5, core_font_text(words["legend_achieved"]))
    x = pdf.get_x()
    pdf.set_draw_color(*RANGE)
    pdf.set_line_width(1.2)
    pdf.line(x, pdf.get_y() + 2.75, x + 8, pdf.get_y() + 2.75)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    pdf.set_x(x + 10)
    pdf.cell(60, 5.5, core_font_text(words["legend_range"]), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(CONTENT_W, 5.5, core_font_text(words["sem_help"]), new_x="LMARGIN", new_y="NEXT")
    pdf.use_font()


def _potensi(pdf: _ReportPDF, rows: list[PotensiRow], lang: str) -> None:
    words = pdf.words
    pdf.heading(words["potensi"])
    with_theta = any(r.theta is not None for r in rows)
    with_sem = any(r.sem is not None for r in rows)
    widths = [90.0, 30.0, 30.0] + ([20.0] if with_sem else []) + ([30.0] if with_theta else [])
    widths[0] = CONTENT_W - sum(widths[1:])
    pdf.use_font("B", 8.5)
    pdf.set_fill_color(234, 238, 243)
    titles = [words["aspect"], words["score"], words["band"]] + (
        [words["sem"]] if with_sem else []) + ([words["theta"]] if with_theta else [])
    for index, (title, width) in enumerate(zip(titles, widths, strict=True)):
        last = index == len(titles) - 1
        pdf.text_cell(width, 7, title, fill=True, align="L" if index == 0 else "C",
                      **({"new_x": "LMARGIN", "new_y": "NEXT"} if last else {}))
    pdf.use_font("", 9)
    for row in rows:
        band = row.band if lang == "id" else (
            f"{BANDS_EN[row.band]} ({row.band})" if row.band in BANDS_EN else row.band)
        values = [row.name, format_number(row.score, lang), band]
        if with_sem:
            values.append(format_number(row.sem, lang, 1))
        if with_theta:
            values.append("-" if row.theta is None else (
                format_number(row.theta, lang) + (
                    f" ({format_number(row.theta_se, lang)})" if row.theta_se is not None
                    else "")))
        for index, (value, width) in enumerate(zip(values, widths, strict=True)):
            last = index == len(values) - 1
            pdf.text_cell(width, 6.5, value, border="B", align="L" if index == 0 else "C",
                          **({"new_x": "LMARGIN", "new_y": "NEXT"} if last else {}))


def _bullets(pdf: _ReportPDF, title: str, names: Sequence[str]) -> None:
    pdf.use_font("B", 9.5)
    pdf.cell(CONTENT_W, 6, core_font_text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.use_font("", 9.5)
    for name in names or [pdf.words["none"]]:
        pdf.set_x(MARGIN + 4)
        pdf.multi_cell(CONTENT_W - 4, 5.2, core_font_text(f"- {name}"), new_x="LMARGIN",
                       new_y="NEXT")


def individual_report_pdf(report: IndividualReport, lang: str = "id") -> bytes:
    """The report as PDF bytes (A4, one or more pages)."""
    words = LABELS.get(lang)
    if words is None:
        raise ValueError(f"no report words for language {lang!r}")
    pdf = _ReportPDF(words, f"{report.name} - {report.nip} - {words['confidential']}", lang)
    pdf.core_fonts_encoding = "windows-1252"
    pdf.alias_nb_pages()
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title(core_font_text(f"{words['title']} - {report.name}"))
    pdf.set_author("CACT")
    pdf.set_creator("CACT")
    pdf.add_page()
    _header(pdf, report, lang)
    _identity(pdf, report, lang)
    _psychogram(pdf, [CompetencyRow(*row) for row in report.competencies])
    if report.potensi:
        _potensi(pdf, [PotensiRow(*row) for row in report.potensi], lang)

    pdf.heading(words["match"])
    pdf.use_font("", 10)
    pdf.text_cell(70, 7, words["jpm"])
    pdf.use_font("B", 10)
    jpm = "-" if report.jpm is None else formatting.format_percent(report.jpm, lang, 2)
    pdf.text_cell(CONTENT_W - 70, 7, jpm, new_x="LMARGIN", new_y="NEXT")
    pdf.use_font("", 10)
    pdf.text_cell(70, 7, words["category"])
    pdf.use_font("B", 10)
    pdf.text_cell(CONTENT_W - 70, 7, report.category or "-", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    _bullets(pdf, words["strengths"], report.strengths)
    pdf.ln(1)
    _bullets(pdf, words["development"], report.development)

    if report.recommendation:
        pdf.heading(words["recommendation"])
        pdf.multi_cell(CONTENT_W, 5.2, core_font_text(report.recommendation), new_x="LMARGIN",
                       new_y="NEXT")
    if report.nine_box is not None:
        pdf.heading(words["ninebox"])
        text = words["box"].format(box=report.nine_box)
        if report.nine_box_label:
            text += f" - {report.nine_box_label}"
        pdf.use_font("B", 10)
        pdf.multi_cell(CONTENT_W, 6, core_font_text(text), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
