"""A session's results as a table (the admin page, CSV and XLSX exports): one row per
participant on the roster, with per-construct scores and levels, each competency's required
level and gap, each potensi construct's EAP theta and its standard error, JPM, category,
potensi band, nine-box, how many items were administered and answered (overall and per
section), whether the result counts (``status``: scored, not scoreable, accepted, retake) and
the validity indicators; the XLSX adds a sheet of item-level responses. The columns are listed in
docs/psychometrics.md ("The results export").

Numbers are written without trailing zeros ("12.5", "40") so the same results give the same
file on SQLite and PostgreSQL; XLSX cells hold real numbers so spreadsheets can compute.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.delivery.models import DONE_STATES, Answer, Attempt, AttemptItem, AttemptState
from app.exports import NumberText, append_row, csv_bytes
from app.i18n import translate
from app.scoring.models import ConstructScore, Result
from app.scoring.outcomes import KOMPETENSI_PREFIX, POTENSI, competency_of, item_scores
from app.scoring.service import ScoringCache
from app.scoring.validity import withheld
from app.sessions.models import Participant, RosterEntry, TestSession, job_at_the_time


@dataclass
class ConstructCell:
    raw: Decimal
    max_raw: Decimal
    percent: Decimal
    level: int | None
    theta: float | None
    theta_se: float | None = None


@dataclass
class ResultRow:
    nip: str
    name: str
    job_group: str
    grade: str
    unit: str
    status: str  # attempt state, or "absent" when the participant never logged in
    attempt_id: int | None = None
    total: Decimal | None = None
    constructs: dict[str, ConstructCell] = field(default_factory=dict)
    potensi_score: Decimal | None = None
    potensi_band: str = ""
    jpm: Decimal | None = None
    combined_jpm: Decimal | None = None
    category: str = ""
    nine_box: int | None = None
    development_areas: list[str] = field(default_factory=list)
    required: dict[str, int] = field(default_factory=dict)  # competency -> required level
    gaps: dict[str, int] = field(default_factory=dict)  # competency -> achieved - required
    # section (0-based, blueprint order) -> (items administered, items answered)
    sections: dict[int, tuple[int, int]] = field(default_factory=dict)
    validity: dict[str, Any] = field(default_factory=dict)  # app/scoring/validity.py

    @property
    def not_scoreable(self) -> bool:
        """A result that is "tidak dapat dinilai" (and not accepted by an admin): scores without
        JPM, category, band or box."""
        return withheld(self.validity)

    @property
    def outcome(self) -> str:
        """The export's ``status``: ``scored``, ``not_scoreable`` (withheld, no decision yet),
        ``accepted`` (an admin accepted it), ``retake`` (a retake was scheduled; it stays
        withheld), ``not_scored`` (handed in, no result yet), ``in_progress`` or ``absent``."""
        if self.status == "absent":
            return "absent"
        if self.status not in HANDED_IN:
            return "in_progress"
        if not self.scored:
            return "not_scored"
        if self.validity.get("retake"):
            return "retake"
        if self.validity.get("accepted"):
            return "accepted"
        return "not_scoreable" if self.not_scoreable else "scored"

    @property
    def items_administered(self) -> int | None:
        return sum(n for n, _ in self.sections.values()) if self.sections else None

    @property
    def items_answered(self) -> int | None:
        return sum(a for _, a in self.sections.values()) if self.sections else None

    @property
    def scored(self) -> bool:
        return self.total is not None


@dataclass
class ResultsTable:
    constructs: list[str]
    rows: list[ResultRow]
    sections: int = 0  # how many sections the forms have (columns section_1 ...)

    def competency(self, construct: str) -> bool:
        """A construct with a required level and a gap (kompetensi.*)."""
        return construct.startswith(KOMPETENSI_PREFIX)

    def has_theta(self, construct: str) -> bool:
        """A construct with theta and SE columns: every potensi construct (empty where its
        items carry no IRT parameters), and any other that has a theta."""
        return construct.startswith(POTENSI + ".") or construct in self._with_theta

    @cached_property
    def _with_theta(self) -> set[str]:
        return {c for row in self.rows for c, cell in row.constructs.items()
                if cell.theta is not None}


HANDED_IN = {state.value for state in DONE_STATES}

# The validity indicators (docs/psychometrics.md, "Validity of an attempt"), last so that the
# columns before them keep their places; then the attempt's state, which the ``status`` column
# held before it said whether the result counts.
VALIDITY_COLUMNS = ["scoreable", "not_scoreable_reasons", "rte", "rapid_guesses",
                    "longest_same_place_run", "time_used_s"]


def _dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def number_text(value: Decimal | float | None) -> str:
    """"12.5", "40", "" for None: the same text on every backend."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 4))
    return format(Decimal(value).normalize(), "f")


def results_table(db: Session, session: TestSession) -> ResultsTable:
    """Every roster participant of the session (ordered by NIP) with their result, if any."""
    rows_by_attempt: dict[int, ResultRow] = {}
    rows: list[ResultRow] = []
    for person, entry, attempt in db.execute(
            select(Participant, RosterEntry, Attempt)
            .join(RosterEntry, RosterEntry.participant_id == Participant.id)
            .outerjoin(Attempt, (Attempt.roster_entry_id == RosterEntry.id)
                   & (Attempt.state != AttemptState.prepared))
            .where(RosterEntry.session_id == session.id).order_by(Participant.nip)):
        # The job on this session's roster (the one the result was read against), not the
        # person's job today.
        job = job_at_the_time(entry, person)
        row = ResultRow(nip=person.nip, name=person.name, job_group=job.job_group,
                        grade=job.grade, unit=job.unit,
                        status=attempt.state.value if attempt else "absent",
                        attempt_id=attempt.id if attempt else None)
        rows.append(row)
        if attempt:
            rows_by_attempt[attempt.id] = row
    attempt_ids = list(rows_by_attempt)
    constructs: set[str] = set()
    for start in range(0, len(attempt_ids), 500):
        chunk = attempt_ids[start:start + 500]
        for result in db.scalars(select(Result).where(Result.attempt_id.in_(chunk))):
            row = rows_by_attempt[result.attempt_id]
            detail = result.detail or {}
            row.total, row.jpm = result.total_score, result.jpm
            row.category, row.potensi_band = result.category, result.potensi_band
            row.nine_box = result.nine_box
            row.potensi_score = _dec(detail.get("potensi_score"))
            row.combined_jpm = _dec(detail.get("combined_jpm"))
            row.development_areas = list(detail.get("development_areas") or [])
            row.required = {str(c): int(v) for c, v in (detail.get("required") or {}).items()}
            row.gaps = {str(c): int(v) for c, v in (detail.get("gaps") or {}).items()}
            row.validity = dict(detail.get("validity") or {})
        for score in db.scalars(select(ConstructScore).where(
                ConstructScore.attempt_id.in_(chunk))):
            rows_by_attempt[score.attempt_id].constructs[score.construct] = ConstructCell(
                score.raw, score.max_raw, score.percent, score.level, score.theta,
                score.theta_se)
            constructs.add(score.construct)
        # Answered as scoring counts it: a response that is not blank (None or []).
        counts: dict[tuple[int, int], list[int]] = {}
        for attempt_id, section, response in db.execute(
                select(AttemptItem.attempt_id, AttemptItem.section, Answer.response)
                .outerjoin(Answer, (Answer.attempt_id == AttemptItem.attempt_id)
                           & (Answer.item_id == AttemptItem.item_id))
                .where(AttemptItem.attempt_id.in_(chunk))):
            pair = counts.setdefault((attempt_id, section), [0, 0])
            pair[0] += 1
            pair[1] += response not in (None, [])
        for (attempt_id, section), (administered, answered) in counts.items():
            rows_by_attempt[attempt_id].sections[section] = (administered, answered)
    sections = max((s + 1 for r in rows for s in r.sections), default=0)
    return ResultsTable(sorted(constructs), rows, sections)


def _header(table: ResultsTable) -> list[str]:
    head = ["nip", "name", "job_group", "grade", "unit", "status", "total_score"]
    for construct in table.constructs:
        head += [f"{construct}.raw", f"{construct}.percent", f"{construct}.level"]
        if table.competency(construct):
            head += [f"{construct}.required", f"{construct}.gap"]
        if table.has_theta(construct):
            head += [f"{construct}.theta", f"{construct}.theta_se"]
    head += ["potensi_score", "potensi_band", "jpm", "combined_jpm", "category", "nine_box",
             "items_administered", "items_answered"]
    for number in range(1, table.sections + 1):
        head += [f"section_{number}.items_administered", f"section_{number}.items_answered"]
    return head + VALIDITY_COLUMNS + ["attempt_state"]


def _values(table: ResultsTable, row: ResultRow) -> list[Any]:
    values: list[Any] = [row.nip, row.name, row.job_group, row.grade, row.unit, row.outcome,
                         row.total]
    for construct in table.constructs:
        cell = row.constructs.get(construct)
        values += [cell.raw, cell.percent, cell.level] if cell else [None, None, None]
        if table.competency(construct):
            competency = competency_of(construct)
            values += [row.required.get(competency), row.gaps.get(competency)]
        if table.has_theta(construct):
            values += [cell.theta, cell.theta_se] if cell else [None, None]
    values += [row.potensi_score, row.potensi_band, row.jpm, row.combined_jpm, row.category,
               row.nine_box, row.items_administered, row.items_answered]
    for section in range(table.sections):
        values += list(row.sections.get(section, (None, None)))
    return values + _validity_values(row) + [row.status]


def validity_reason(reason: Mapping[str, Any], lang: str) -> str:
    """One reason an attempt is not scoreable, as a sentence ("Bagian 1: 0 dari 56 soal
    dijawab", "Diserahkan paksa oleh pengawas: koneksi terputus")."""
    params = {k: v for k, v in reason.items() if k != "rule"}
    if "rte" in params:
        params["rte"] = f"{Decimal(str(params['rte'])) * 100:.0f}"
    rule = str(reason.get("rule", "unknown"))
    if rule == "forced" and params.get("note"):
        rule = "forced_note"  # the reason the proctor typed
    return translate(lang, f"validity.{rule}", **params)


def _validity_values(row: ResultRow) -> list[Any]:
    check = row.validity
    if not check:
        return [None] * len(VALIDITY_COLUMNS)
    reasons = "; ".join(validity_reason(r, "id") for r in check.get("reasons", []))
    status = "accepted" if check.get("accepted") else "no" if row.not_scoreable else "yes"
    return [status, reasons, _dec(check.get("rte")),
            check.get("rapid"), check.get("longest_same_place_run"), check.get("time_used_s")]


def to_csv(table: ResultsTable) -> bytes:
    """UTF-8 with a BOM (Excel then reads names with accents correctly), comma separated;
    text that a spreadsheet would run as a formula is neutralised (app/exports.py)."""
    return csv_bytes(_header(table), (
        [v if isinstance(v, str) else NumberText(number_text(v)) for v in _values(table, row)]
        for row in table.rows))


def response_rows(db: Session, session: TestSession) -> list[tuple[str, str, int, str, Decimal]]:
    """(NIP, item code, position, response as option labels, score) for every item of every
    handed-in attempt, scored with the current keys."""
    cache = ScoringCache(db)
    out = []
    for nip, attempt_id in db.execute(
            select(Participant.nip, Attempt.id)
            .join(RosterEntry, RosterEntry.participant_id == Participant.id)
            .join(Attempt, Attempt.roster_entry_id == RosterEntry.id)
            .where(Attempt.session_id == session.id, Attempt.state.in_(DONE_STATES))
            .order_by(Participant.nip)):
        form = list(db.execute(select(AttemptItem.item_id, AttemptItem.position).where(
            AttemptItem.attempt_id == attempt_id).order_by(AttemptItem.position)).all())
        answers: dict[int, Any] = dict(db.execute(select(Answer.item_id, Answer.response).where(
            Answer.attempt_id == attempt_id)).all())
        cache.load_items(i for i, _ in form)
        scores = dict(item_scores(cache, [i for i, _ in form], answers))
        for item_id, position in form:
            item = cache.items[item_id]
            response = answers.get(item_id)
            chosen = response if isinstance(response, list) else (
                [] if response is None else [response])
            # In the author's option order (the taker saw a shuffled one).
            out.append((nip, item.code, position,
                        ";".join(label for o, label in item.labels.items() if o in chosen),
                        scores[item_id]))
    return out


def to_xlsx(table: ResultsTable, responses: list[tuple[str, str, int, str, Decimal]]) -> bytes:
    """Sheet "Hasil": one row per participant; sheet "Jawaban": item-level responses."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.worksheets[0]  # a new workbook has one sheet, the active one
    sheet.title = "Hasil"
    append_row(sheet, _header(table))
    for row in table.rows:
        append_row(sheet, _values(table, row))  # numbers with their display formats
    # NIPs are 18 digits: as numbers a spreadsheet would round them, so they stay text.
    for cell in sheet["A"]:
        cell.number_format = "@"
    answers = book.create_sheet("Jawaban")
    append_row(answers, ["nip", "item_code", "position", "response", "score"])
    for nip, code, position, response, score in responses:
        append_row(answers, [nip, code, position, response or None, score])
    sheet.freeze_panes = "C2"
    answers.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def export_results(db: Session, session: TestSession, *, fmt: str, actor: str,
                   now: datetime) -> tuple[bytes, ResultsTable]:
    """The results file of a session (``fmt`` "csv" or "xlsx"), with its audit row: every
    participant's scores leave the server, whoever asks (the admin page or ``cact results
    export``)."""
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"format must be csv or xlsx, not {fmt!r}")
    table = results_table(db, session)
    data = to_csv(table) if fmt == "csv" else to_xlsx(table, response_rows(db, session))
    audit.record(db, actor=actor, action="results.export", target=f"session:{session.code}",
                 now=now, data={"format": fmt, "rows": len(table.rows)})
    return data, table
