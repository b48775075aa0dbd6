"""A programme's talent map (nine-box) across all its sessions, from the attempt that counts for
each person (app/programmes/results.py): the names and counts per box, filtered by unit (OPD)
and job group; the people without a box, listed apart with the reason; the kinerja import for
the people of the programme; the map as XLSX and as a printable A4 PDF (docs/psychometrics.md,
"Talent map of a programme").

A person has a box only when the attempt that counts is trusted (scored, or accepted by an
admin) and has a performance rating: an attempt that is *tidak dapat dinilai* stays off the
map until an admin decides, whatever kinerja is imported.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app import audit
from app.bank.parsed import ImportFailed, Problem, problem
from app.exports import append_row
from app.i18n import translate
from app.programmes.models import Programme
from app.programmes.results import PersonRow, ProgrammeResults, programme_results
from app.reports.service import BOXES, box_action, box_placement
from app.scoring.imports import ImportCounts, import_ratings, parse_ratings
from app.sessions.cards import core_font_text
from app.sessions.models import JobGroup, clean_nip

# Why a person has no box, in the order the page lists them.
REASONS = ("not_scoreable", "retake", "no_kinerja", "no_result")
FORMATS = ("xlsx", "pdf")
# The grid as it is drawn: top row (high potential) first, low performance on the left.
GRID = ((6, 8, 9), (3, 5, 7), (1, 2, 4))


def reason_of(row: PersonRow) -> str:
    """Why ``row`` has no box ("" when it has one)."""
    if row.nine_box is not None:
        return ""
    if row.status == "not_scoreable":
        return "not_scoreable"
    if row.status == "retake":
        return "retake"
    if row.chosen.trusted:  # a result to place, but no performance axis yet
        return "no_kinerja"
    return "no_result"  # absent, still running, handed in but not scored


@dataclass(frozen=True)
class MapPerson:
    nip: str
    name: str
    job_group: str
    unit: str
    session_code: str
    status: str
    box: int | None
    reason: str  # "" when placed, else one of REASONS


@dataclass
class TalentMap:
    programme: Programme
    people: list[MapPerson]  # everybody in the filter, by NIP
    unit: str = ""
    job_group: str = ""
    units: list[str] = field(default_factory=list)  # the filter's choices (whole programme)
    sessions: list[str] = field(default_factory=list)

    @property
    def boxes(self) -> dict[int, list[MapPerson]]:
        """Every box, its people sorted by name (then NIP)."""
        groups: dict[int, list[MapPerson]] = {box: [] for box in BOXES}
        for person in self.people:
            if person.box is not None:
                groups[person.box].append(person)
        return {box: sorted(v, key=_by_name) for box, v in groups.items()}

    @property
    def counts(self) -> dict[int, int]:
        return {box: len(people) for box, people in self.boxes.items()}

    @property
    def placed(self) -> int:
        return sum(1 for p in self.people if p.box is not None)

    @property
    def unplaced(self) -> dict[str, list[MapPerson]]:
        """The people without a box, by reason (every reason present), sorted by name."""
        groups: dict[str, list[MapPerson]] = {reason: [] for reason in REASONS}
        for person in self.people:
            if person.box is None:
                groups[person.reason].append(person)
        return {reason: sorted(v, key=_by_name) for reason, v in groups.items()}

    @property
    def filtered(self) -> bool:
        return bool(self.unit or self.job_group)

    def filter_text(self, lang: str) -> str:
        parts = []
        if self.unit:
            parts.append(translate(lang, "talentmap.filter_unit", unit=self.unit))
        if self.job_group:
            parts.append(translate(lang, "talentmap.filter_job_group",
                                   job_group=self.job_group))
        return "; ".join(parts) if parts else translate(lang, "talentmap.filter_none")


def _by_name(person: MapPerson) -> tuple[str, str]:
    return person.name.casefold(), person.nip


def _person(row: PersonRow) -> MapPerson:
    return MapPerson(row.nip, row.name, row.job_group, row.unit, row.session_code, row.status,
                     row.nine_box, reason_of(row))


def talent_map(db: Session, programme: Programme, *, unit: str = "", job_group: str = "",
               table: ProgrammeResults | None = None) -> TalentMap:
    """The programme's map, for the people of ``unit`` and ``job_group`` ("" = all)."""
    table = table if table is not None else programme_results(db, programme)
    unit, job_group = unit.strip(), job_group.strip().lower()
    rows = [r for r in table.rows
            if (not unit or r.unit == unit) and (not job_group or r.job_group == job_group)]
    return TalentMap(programme, [_person(r) for r in rows], unit=unit, job_group=job_group,
                     units=sorted({r.unit for r in table.rows if r.unit}, key=str.casefold),
                     sessions=table.sessions)


def job_groups() -> list[str]:
    return [g.value for g in JobGroup]


# -- kinerja at programme level -----------------------------------------------------------------


@dataclass(frozen=True)
class KinerjaImport:
    counts: ImportCounts
    rescored: int
    people: int


def _nip_rows(data: bytes) -> dict[str, int]:
    """NIP -> its row in the file as a spreadsheet numbers it (the kinerja parser's reading:
    BOM, and ',' ';' or tab as the delimiter), to locate a refusal."""
    text = data.decode("utf-8-sig", errors="replace")
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    if "nip" not in header:
        return {}
    column = header.index("nip")
    found: dict[str, int] = {}
    for number, values in enumerate(reader, 2):
        if column < len(values):
            found.setdefault(clean_nip(values[column]), number)
    return found


def import_programme_kinerja(db: Session, *, programme: Programme, data: bytes, source: str,
                             actor: str, now: datetime) -> KinerjaImport:
    """Kinerja ratings (``nip,period,rating``, the session import's CSV) for the people of the
    programme. A NIP on no roster of the programme is refused with its row, and then nothing
    is stored. The ratings are stored and the people's handed-in attempts rescored by the
    session import's own function (:func:`app.scoring.imports.import_ratings`, audited as
    ``performance.import``), so every session of the programme shows their box; the import
    is audited on the programme too."""
    rows = parse_ratings(data, source=source)
    members = {r.nip for r in programme_results(db, programme).rows}
    outside = sorted({r.nip for r in rows if r.nip not in members})
    if outside:
        where = _nip_rows(data)
        problems: list[Problem] = [
            problem(source, f"row {where[nip]}, column nip" if nip in where else "", nip,
                    key="talentmap_not_in_programme", nip=nip, programme=programme.code)
            for nip in outside]
        raise ImportFailed(problems)
    counts, rescored = import_ratings(db, rows=rows, source=source, actor=actor, now=now)
    people = len({r.nip for r in rows})
    audit.record(db, actor=actor, action="programme.kinerja_import",
                 target=f"programme:{programme.code}", now=now,
                 data={"source": source, "people": people, "added": counts.added,
                       "updated": counts.updated, "unchanged": counts.unchanged,
                       "rescored": rescored})
    return KinerjaImport(counts, rescored, people)


# -- the map as a file --------------------------------------------------------------------------


def to_xlsx(tmap: TalentMap, lang: str = "id") -> bytes:
    """One row per person of the filter (the placed ones by box, then the others) and a
    summary sheet of the counts per box and per reason."""
    from openpyxl import Workbook

    def t(key: str, **params: object) -> str:
        return translate(lang, f"talentmap.{key}", **params)

    book = Workbook()
    sheet = book.worksheets[0]
    sheet.title = t("sheet_people")[:31]
    append_row(sheet, ["nip", "name", "job_group", "unit", "session", "status", "nine_box",
                       "placement", "action", "reason"])
    placed = sorted((p for p in tmap.people if p.box is not None),
                    key=lambda p: (-(p.box or 0), *_by_name(p)))
    others = sorted((p for p in tmap.people if p.box is None),
                    key=lambda p: (REASONS.index(p.reason), *_by_name(p)))
    for p in placed + others:
        append_row(sheet, [
            p.nip, p.name, p.job_group, p.unit, p.session_code, p.status, p.box,
            box_placement(p.box, lang) if p.box is not None else "",
            box_action(p.box, lang) if p.box is not None else "",
            t(f"reason_{p.reason}") if p.reason else ""])
    for cell in sheet["A"]:  # 18-digit NIPs as text: a number would be rounded
        cell.number_format = "@"
    summary = book.create_sheet(t("sheet_summary")[:31])
    append_row(summary, [t("programme"), f"{tmap.programme.code} - {tmap.programme.name}"])
    append_row(summary, [t("filter"), tmap.filter_text(lang)])
    append_row(summary, [])
    append_row(summary, ["nine_box", "placement", "action", "count"])
    counts = tmap.counts
    for box in sorted(BOXES, reverse=True):
        append_row(summary, [box, box_placement(box, lang), box_action(box, lang), counts[box]])
    append_row(summary, [])
    append_row(summary, ["reason", t("without_box"), "", "count"])
    for reason, people in tmap.unplaced.items():
        append_row(summary, [reason, t(f"reason_{reason}"), "", len(people)])
    append_row(summary, [])
    append_row(summary, ["placed", t("placed_label"), "", tmap.placed])
    append_row(summary, ["total", t("total_label"), "", len(tmap.people)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# A4 landscape, millimetres.
PAGE_W, PAGE_H, MARGIN = 297.0, 210.0, 12.0
AXIS_W = 14.0
CELL_W = (PAGE_W - 2 * MARGIN - AXIS_W) / 3
CELL_H = 46.0
NAME_H = 3.4
FILL = {1: (246, 213, 216), 2: (251, 227, 200), 3: (251, 227, 200), 4: (255, 241, 194),
        5: (255, 241, 194), 6: (255, 241, 194), 7: (216, 239, 220), 8: (216, 239, 220),
        9: (183, 226, 192)}


def _fit(pdf, text: str, width: float) -> str:
    text = core_font_text(text)
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..."


def to_pdf(tmap: TalentMap, *, lang: str = "id", printed: datetime) -> bytes:
    """One A4 page (landscape) for the head of the agency: the title, the programme, the date,
    the filter, the 3x3 grid with the count and names of each box ("+N lainnya" when a box is
    too full), and the people without a box counted by reason."""
    from fpdf import FPDF

    from app.reports.individual import format_date

    def t(key: str, **params: object) -> str:
        return translate(lang, f"talentmap.{key}", **params)

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.add_page()
    programme = tmap.programme
    pdf.set_font("Helvetica", "B", 15)
    pdf.set_text_color(20, 40, 80)
    pdf.cell(0, 7, core_font_text(t("pdf_title")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "", 9.5)
    head = f"{programme.name} ({programme.code})"
    if programme.agency:
        head += f" - {programme.agency}"
    pdf.cell(0, 5, _fit(pdf, head, PAGE_W - 2 * MARGIN), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, _fit(pdf, f"{t('date')}: {format_date(printed, lang)}   "
                              f"{t('filter')}: {tmap.filter_text(lang)}   "
                              f"{t('sessions_label')}: {', '.join(tmap.sessions) or '-'}",
                        PAGE_W - 2 * MARGIN), new_x="LMARGIN", new_y="NEXT")
    unplaced = tmap.unplaced
    pdf.cell(0, 5, core_font_text(t("pdf_summary", placed=tmap.placed, total=len(tmap.people))),
             new_x="LMARGIN", new_y="NEXT")
    top = pdf.get_y() + 2
    left = MARGIN + AXIS_W
    boxes = tmap.boxes
    for row_index, row in enumerate(GRID):
        for column, box in enumerate(row):
            x, y = left + column * CELL_W, top + row_index * CELL_H
            pdf.set_fill_color(*FILL[box])
            pdf.set_draw_color(91, 102, 117)
            pdf.rect(x, y, CELL_W, CELL_H, style="DF")
            people = boxes[box]
            pdf.set_xy(x + 1.5, y + 1.2)
            pdf.set_font("Helvetica", "B", 10)
            pdf.cell(CELL_W / 2, 4.5, core_font_text(t("box", box=box)))
            pdf.set_xy(x + CELL_W / 2, y + 1.2)
            pdf.cell(CELL_W / 2 - 1.5, 4.5, core_font_text(t("people", count=len(people))),
                     align="R")
            pdf.set_font("Helvetica", "I", 6.8)
            pdf.set_xy(x + 1.5, y + 5.8)
            pdf.cell(CELL_W - 3, 3.2, _fit(pdf, box_action(box, lang), CELL_W - 3))
            pdf.set_font("Helvetica", "", 7.2)
            # Two columns of names under the header.
            lines = int((CELL_H - 10.5) // NAME_H)
            room = 2 * lines
            shown = people if len(people) <= room else people[:room - 1]
            for index, person in enumerate(shown):
                col, line = divmod(index, lines)
                pdf.set_xy(x + 1.5 + col * (CELL_W / 2), y + 9.8 + line * NAME_H)
                pdf.cell(CELL_W / 2 - 2, NAME_H, _fit(pdf, person.name, CELL_W / 2 - 3))
            if len(shown) < len(people):
                col, line = divmod(len(shown), lines)
                pdf.set_font("Helvetica", "I", 7.2)
                pdf.set_xy(x + 1.5 + col * (CELL_W / 2), y + 9.8 + line * NAME_H)
                pdf.cell(CELL_W / 2 - 2, NAME_H,
                         core_font_text(t("more", count=len(people) - len(shown))))
    # Axes: potential on the left (rotated), performance under the grid.
    pdf.set_font("Helvetica", "", 8)
    for row_index, level in enumerate(("high", "medium", "low")):
        y = top + row_index * CELL_H + CELL_H / 2
        with pdf.rotation(90, MARGIN + AXIS_W - 2, y):
            pdf.set_xy(MARGIN + AXIS_W - 2 - 20, y - 3)
            pdf.cell(40, 3.5, core_font_text(t(f"axis_{level}")), align="C")
    with pdf.rotation(90, MARGIN + 3, top + 1.5 * CELL_H):
        pdf.set_font("Helvetica", "B", 9)
        pdf.set_xy(MARGIN + 3 - 30, top + 1.5 * CELL_H - 3)
        pdf.cell(60, 4, core_font_text(t("axis_potential")), align="C")
    bottom = top + 3 * CELL_H
    pdf.set_font("Helvetica", "", 8)
    for column, level in enumerate(("below", "as_expected", "above")):
        pdf.set_xy(left + column * CELL_W, bottom + 0.8)
        pdf.cell(CELL_W, 3.8, core_font_text(t(f"axis_{level}")), align="C")
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_xy(left, bottom + 4.6)
    pdf.cell(3 * CELL_W, 4, core_font_text(t("axis_performance")), align="C")
    pdf.set_font("Helvetica", "", 8)
    pdf.set_xy(MARGIN, bottom + 9.5)
    apart = "; ".join(t("reason_count", reason=t(f"reason_{reason}"), count=len(people))
                      for reason, people in unplaced.items())
    pdf.cell(0, 4, _fit(pdf, f"{t('without_box')}: {apart}", PAGE_W - 2 * MARGIN))
    return bytes(pdf.output())


def export_map(db: Session, *, programme: Programme, fmt: str, actor: str, now: datetime,
               unit: str = "", job_group: str = "", lang: str = "id",
               zone: str = "Asia/Jakarta") -> bytes:
    """The map in ``fmt`` (xlsx or pdf) for the filter, audited: it carries everybody's box."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use xlsx or pdf")
    tmap = talent_map(db, programme, unit=unit, job_group=job_group)
    data = (to_xlsx(tmap, lang) if fmt == "xlsx"
            else to_pdf(tmap, lang=lang, printed=now.astimezone(ZoneInfo(zone))))
    audit.record(db, actor=actor, action="programme.export_talent_map",
                 target=f"programme:{programme.code}", now=now,
                 data={"format": fmt, "unit": tmap.unit, "job_group": tmap.job_group,
                       "people": len(tmap.people), "placed": tmap.placed, "lang": lang})
    return data
