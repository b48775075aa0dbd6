"""CSV and .xlsx imports that feed scoring (read by app/spreadsheets.py): job standards
(required level per job and competency) and kinerja ratings (the nine-box's performance axis);
and the job standards exported in the very format their import reads.

Like the roster import, every bad row is reported with its row and column, and nothing is
written when any row is bad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.bank.parsed import ImportFailed, problem
from app.exports import csv_bytes
from app.scoring import engine
from app.scoring.models import JobStandard, PerformanceRating
from app.scoring.service import rescore_participants
from app.scoring.standards import COMPETENCIES
from app.sessions.models import GRADES, Participant, clean_nip
from app.spreadsheets import TableError, read_rows

JOB_GROUPS = ("administrator", "pengawas", "pelaksana")
STANDARDS_COLUMNS = ("job_key", "competency", "required_level")
MAX_ROWS = 20000
_SCIENTIFIC = re.compile(r"^\d+([.,]\d+)?[eE][+-]?\d+$")  # 1.98504E+17

# Kinerja predicates as agencies write them (PermenPANRB 6/2022 uses "di atas / sesuai /
# di bawah ekspektasi"; older SKP reports say sangat baik / baik / cukup / kurang).
RATING_WORDS = {
    "below": "below", "as_expected": "as_expected", "above": "above",
    "di bawah ekspektasi": "below", "dibawah ekspektasi": "below",
    "sesuai ekspektasi": "as_expected",
    "di atas ekspektasi": "above", "diatas ekspektasi": "above",
    "sangat baik": "above", "baik": "as_expected", "butuh perbaikan": "below",
    "cukup": "below", "kurang": "below", "sangat kurang": "below",
}


def _letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class _Table:
    """A CSV or .xlsx with required columns, read leniently (app/spreadsheets.py: encodings,
    line endings, ';' or tab) and located precisely (row numbers as a spreadsheet shows them,
    column name and letter). Unknown columns and values beyond the header are refused, as the
    roster import does."""

    def __init__(self, data: bytes, source: str, required: tuple[str, ...],
                 optional: tuple[str, ...] = ()) -> None:
        self.source, self.problems = source, []
        try:
            table = read_rows(data)
        except TableError as failed:
            raise ImportFailed([problem(source, failed.location, "", key=failed.key,
                                        **failed.params)]) from None
        self.reader = iter(table.rows)
        header = [h.strip().lower() for h in next(self.reader, [])]
        self.width = len(header)
        self.columns: dict[str, int] = {}
        for index, name in enumerate(header):
            if name in required + optional and name not in self.columns:
                self.columns[name] = index
            elif name:
                self.problems.append(problem(
                    source, f"row 1, column {_letter(index)}", "", key="table_unknown_column",
                    column=name, columns=", ".join(required + optional)))
        missing = [c for c in required if c not in self.columns]
        if missing:
            self.problems.append(problem(source, "row 1", "", key="table_missing_columns",
                                         columns=", ".join(missing)))
            raise ImportFailed(self.problems)

    def rows(self):
        for number, values in enumerate(self.reader, 2):
            if not any(v.strip() for v in values):
                continue
            if number > MAX_ROWS + 1:
                self.problems.append(problem(self.source, f"row {number}", "",
                                             key="table_too_many_rows", limit=MAX_ROWS))
                return
            if len(values) > self.width and any(v.strip() for v in values[self.width:]):
                self.problems.append(problem(self.source, f"row {number}", "",
                                             key="table_extra_values", found=len(values),
                                             expected=self.width))
                continue
            yield number, {name: values[i].strip() if i < len(values) else ""
                           for name, i in self.columns.items()}

    def where(self, row: int, column: str | None) -> str:
        return f"row {row}" + (f", column {column} ({_letter(self.columns[column])})"
                               if column else "")

    def problem(self, row: int, column: str | None, key: str, who: str = "",
                **params: object) -> None:
        """A problem at ``row`` / ``column``: the message ``problem.<key>``, in the reader's
        language when shown."""
        self.problems.append(problem(self.source, self.where(row, column), who, key=key,
                                     **params))


# -- job standards ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandardRow:
    job_key: str
    competency: str
    required_level: int


def _job_key(value: str) -> str | None:
    text = value.strip()
    if text.lower() in JOB_GROUPS:
        return text.lower()
    group, _, grade = text.partition(":")
    if group.strip().lower() == "fungsional":
        for known in GRADES:
            if known.lower() == grade.strip().lower():
                return f"fungsional:{known}"
    return None


def parse_standards(data: bytes, *, source: str) -> list[StandardRow]:
    """Read ``job_key,competency,required_level`` rows; ImportFailed lists every problem."""
    table = _Table(data, source, STANDARDS_COLUMNS)
    rows: list[StandardRow] = []
    seen: dict[tuple[str, str], int] = {}
    for number, record in table.rows():
        key = _job_key(record["job_key"])
        if key is None:
            table.problem(number, "job_key", "standards_job_key", value=record["job_key"],
                          groups=", ".join(JOB_GROUPS), grades=", ".join(GRADES))
        competency = record["competency"].lower().removeprefix("kompetensi.")
        if competency not in COMPETENCIES:
            table.problem(number, "competency", "standards_competency",
                          value=record["competency"], competencies=", ".join(COMPETENCIES))
        level = record["required_level"]
        if not (level.isdigit() and 1 <= int(level) <= 5):
            table.problem(number, "required_level", "standards_level", value=level)
        if key and competency in COMPETENCIES and level.isdigit() and 1 <= int(level) <= 5:
            if (key, competency) in seen:
                table.problem(number, "competency", "standards_duplicate", job=key,
                              competency=competency, earlier=seen[(key, competency)])
            else:
                seen[(key, competency)] = number
                rows.append(StandardRow(key, competency, int(level)))
    if not rows and not table.problems:
        table.problem(2, None, "import_no_rows")
    if table.problems:
        raise ImportFailed(table.problems)
    return rows


@dataclass
class ImportCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


def import_standards(db: Session, *, rows: list[StandardRow], source: str, actor: str,
                     now: datetime) -> ImportCounts:
    """Add or change required levels (other rows of the table are kept). Results are not
    rescored here: a standard changes the reading of past sessions, so that is the admin's
    explicit ``rescore``."""
    existing = {(s.job_key, s.competency): s for s in db.scalars(select(JobStandard))}
    counts = ImportCounts()
    for row in rows:
        current = existing.get((row.job_key, row.competency))
        if current is None:
            db.add(JobStandard(job_key=row.job_key, competency=row.competency,
                               required_level=row.required_level))
            counts.added += 1
        elif current.required_level != row.required_level:
            current.required_level = row.required_level
            counts.updated += 1
        else:
            counts.unchanged += 1
    db.flush()
    audit.record(db, actor=actor, action="standards.import", target="job_standards", now=now,
                 data={"source": source, **counts.__dict__})
    return counts


def export_standards(db: Session, *, actor: str, now: datetime) -> tuple[bytes, int]:
    """The job standards table as the CSV :func:`parse_standards` reads (``cact standards
    export`` and the standards page), one row per stored (job, competency), in job and
    competency order; defaults that are not in the table are not rows of it. Audited like
    every export. Returns the file and its number of rows."""
    # Sorted here, not by the database: PostgreSQL's collation would order them differently.
    rows = sorted((s.job_key, s.competency, s.required_level)
                  for s in db.scalars(select(JobStandard)))
    audit.record(db, actor=actor, action="standards.export", target="job_standards", now=now,
                 data={"rows": len(rows)})
    return csv_bytes(STANDARDS_COLUMNS, rows), len(rows)


# -- kinerja ratings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingRow:
    nip: str
    period: str
    rating: str
    score: Decimal | None


def parse_ratings(data: bytes, *, source: str) -> list[RatingRow]:
    """Read ``nip,period,rating`` rows. A rating is below / as_expected / above, an
    Indonesian predicate (di atas ekspektasi, sangat baik ...) or a 0-100 score, mapped with
    the SKP bands (>= 91 above, >= 76 as expected)."""
    table = _Table(data, source, ("nip", "period", "rating"))
    rows: list[RatingRow] = []
    seen: dict[tuple[str, str], int] = {}
    for number, record in table.rows():
        nip = clean_nip(record["nip"])
        ok = True
        if _SCIENTIFIC.match(nip):  # an 18-digit NIP Excel stored as a number
            table.problems.append(problem(source, table.where(number, "nip"), nip,
                                          key="roster_nip_scientific", value=nip))
            ok = False
        elif not (nip.isdigit() and len(nip) == 18):
            table.problem(number, "nip", "kinerja_nip", nip, value=record["nip"])
            ok = False
        period = record["period"]
        if not period or len(period) > 32:
            table.problem(number, "period", "kinerja_period", nip)
            ok = False
        text, score = record["rating"].strip(), None
        rating = RATING_WORDS.get(" ".join(text.lower().replace("_", " ").split())) \
            or RATING_WORDS.get(text.lower())
        if rating is None:
            try:
                score = Decimal(text.replace(",", "."))
            except InvalidOperation:
                score = None
            if score is None or not score.is_finite() or not 0 <= score <= 100:
                table.problem(number, "rating", "kinerja_rating", nip, value=text)
                ok = False
            else:
                rating = engine.performance_from_score(score)
        if ok and (nip, period) in seen:
            table.problem(number, "nip", "kinerja_duplicate", nip, nip=nip, period=period,
                          earlier=seen[(nip, period)])
            ok = False
        if ok and rating is not None:  # a rating word, or one from the score
            seen[(nip, period)] = number
            rows.append(RatingRow(nip, period, rating, score))
    if not rows and not table.problems:
        table.problem(2, None, "import_no_rows")
    if table.problems:
        raise ImportFailed(table.problems)
    return rows


def import_ratings(db: Session, *, rows: list[RatingRow], source: str, actor: str,
                   now: datetime) -> tuple[ImportCounts, int]:
    """Store kinerja ratings (one per participant and period) and rescore the handed-in
    attempts of those participants so their nine-box follows. Every NIP must be a known
    participant, else nothing is stored. Returns the counts and how many attempts were
    rescored."""
    nips = sorted({r.nip for r in rows})
    people: dict[str, int] = {}
    for start in range(0, len(nips), 500):
        people.update(db.execute(select(Participant.nip, Participant.id).where(
            Participant.nip.in_(nips[start:start + 500]))).all())
    unknown = [r for r in rows if r.nip not in people]
    if unknown:
        raise ImportFailed([problem(source, "", r.nip, key="kinerja_unknown_nip", nip=r.nip)
                            for r in unknown])
    existing = {(p.participant_id, p.period): p for p in db.scalars(
        select(PerformanceRating).where(PerformanceRating.participant_id.in_(
            list(people.values()))))} if people else {}
    counts = ImportCounts()
    for row in rows:
        pid = people[row.nip]
        current = existing.get((pid, row.period))
        if current is None:
            db.add(PerformanceRating(participant_id=pid, period=row.period, rating=row.rating,
                                     score=row.score))
            counts.added += 1
        elif (current.rating, current.score) != (row.rating, row.score):
            current.rating, current.score = row.rating, row.score
            counts.updated += 1
        else:
            counts.unchanged += 1
    db.flush()
    summary = rescore_participants(db, participant_ids=people.values(), now=now)
    audit.record(db, actor=actor, action="performance.import", target="performance_ratings",
                 now=now, data={"source": source, **counts.__dict__,
                                "rescored": summary.scored})
    return counts, summary.scored
