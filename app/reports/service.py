"""Individual reports from the stored results: the data behind the report page and the PDF,
and the recommendation text; the talent map's grouping.

Scoring has already done the arithmetic (``results.detail`` holds required and achieved
levels, gaps, strengths, development areas, aspect percents and the settings used); this
module only reads those rows back and words them, in Indonesian by default or in English.
The zip of all of a session's reports is :mod:`app.reports.zipjob`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis.service import ScaleError, measurement_errors
from app.bank import levels
from app.bank.constructs import KNOWN_CONSTRUCTS
from app.bank.models import BankVersion
from app.delivery.models import Attempt, AttemptState
from app.i18n import translate
from app.reports.export import validity_reason
from app.reports.individual import (
    CompetencyRow,
    IndividualReport,
    PotensiRow,
    individual_report_pdf,
)
from app.scoring import engine
from app.scoring.models import ConstructScore, Result
from app.scoring.outcomes import KOMPETENSI_PREFIX, aspect_of
from app.scoring.standards import COMPETENCIES
from app.scoring.validity import withheld
from app.sessions.models import Participant, RosterEntry, TestSession, job_at_the_time

BOXES = range(1, 10)
TIERS = ("high", "middle", "low")


# -- recommendation (pure) ----------------------------------------------------------------------


def category_tier(category: str) -> tuple[str, str] | None:
    """(purpose, tier) of a category label: ``("mapping", "high")`` for Optimal,
    ``("placement", "low")`` for Kurang Memenuhi Syarat; None for an unknown or empty label."""
    for purpose, bands in engine.CATEGORIES.items():
        for index, (_, label) in enumerate(bands):
            if label == category:
                return purpose, TIERS[index]
    return None


def box_action(box: int, lang: str = "id") -> str:
    """The usual talent-management action for a nine-box box (docs/domain.md, the talent
    map table)."""
    if box not in BOXES:
        raise ValueError(f"nine-box number must be 1-9, not {box!r}")
    return translate(lang, f"talent.box_{box}_action")


def box_placement(box: int, lang: str = "id") -> str:
    """Where the box is: "Kinerja di atas ekspektasi, potensi tinggi"."""
    if box not in BOXES:
        raise ValueError(f"nine-box number must be 1-9, not {box!r}")
    return translate(lang, f"talent.box_{box}_place")


def recommendation(*, category: str, nine_box: int | None, development: Sequence[str] = (),
                   lang: str = "id") -> str:
    """The report's recommendation: a sentence for the category (by the purpose of the
    assessment and its tier), the development areas to start with, and the nine-box action
    once performance is known. Empty when there is nothing to recommend from."""
    parts: list[str] = []
    tier = category_tier(category)
    if tier is not None:
        parts.append(translate(lang, f"recommend.{tier[0]}_{tier[1]}"))
    if development and tier is not None:
        parts.append(translate(lang, "recommend.focus", areas=", ".join(development)))
    if nine_box is not None:
        parts.append(translate(lang, "recommend.box", box=nine_box,
                               action=box_action(nine_box, lang)))
    return " ".join(parts)


# -- the report's data --------------------------------------------------------------------------


@dataclass
class CompetencyLine:
    code: str
    name: str
    required: int | None  # None: no standard for this job
    achieved: int | None
    gap: int | None
    # The standard error of measurement in points of the 0-100 score the level is cut on, and
    # the levels of the score minus and plus one SEM (None where it cannot be estimated).
    sem: float | None = None
    low: int | None = None
    high: int | None = None


@dataclass
class AspectLine:
    code: str
    name: str
    score: Decimal | None
    band: str
    theta: float | None = None
    theta_se: float | None = None
    sub: bool = False  # a construct of the aspect above (shown when it has its own theta)
    sem: float | None = None  # points of the 0-100 score


@dataclass
class ParticipantReport:
    session_code: str
    session_name: str
    nip: str
    name: str
    job_group: str
    grade: str
    position: str
    unit: str
    status: str  # attempt state, or "absent"
    date: datetime  # the hand-in, else the session's start: from the database, not a clock
    scored: bool = False
    job_key: str = ""
    competencies: list[CompetencyLine] = field(default_factory=list)
    aspects: list[AspectLine] = field(default_factory=list)
    potensi_score: Decimal | None = None
    potensi_band: str = ""
    jpm: Decimal | None = None
    combined_jpm: Decimal | None = None
    category: str = ""
    purpose: str = "mapping"
    strengths: list[str] = field(default_factory=list)
    development: list[str] = field(default_factory=list)
    nine_box: int | None = None
    performance: dict[str, Any] | None = None
    recommendation: str = ""
    box_action: str = ""
    box_placement: str = ""
    # Why the attempt is "tidak dapat dinilai" (app/scoring/validity.py), one text per rule
    # it failed; empty when it is scoreable.
    not_scoreable: list[str] = field(default_factory=list)
    # An admin's acceptance of an attempt that was not scoreable: by, reason, at.
    accepted: dict[str, str] = field(default_factory=dict)

    @property
    def job_text(self) -> str:
        group = self.job_group.capitalize()
        return f"{group} · {self.grade}" if self.grade else group

    @property
    def has_theta(self) -> bool:
        return any(a.theta is not None for a in self.aspects)

    @property
    def has_sem(self) -> bool:
        return any(c.sem is not None for c in self.competencies) or any(
            a.sem is not None for a in self.aspects)

    def individual_report(self) -> IndividualReport:
        """The plain data :func:`individual_report_pdf` draws (in the language the report was
        built in)."""
        return IndividualReport(
            name=self.name, nip=self.nip, job_group=self.job_text, position=self.position,
            unit=self.unit, session=f"{self.session_code} - {self.session_name}",
            date=self.date,
            competencies=[CompetencyRow(c.name, c.required, c.achieved, c.gap, c.sem, c.low,
                                        c.high)
                          for c in self.competencies if c.required is not None],
            potensi=[PotensiRow(("   " if a.sub else "") + a.name,
                                a.score if a.score is not None else Decimal(0), a.band,
                                a.theta, a.theta_se, a.sem) for a in self.aspects],
            jpm=self.jpm, category=self.category, strengths=list(self.strengths),
            development=list(self.development), recommendation=self.recommendation,
            nine_box=self.nine_box, nine_box_label=self.box_action)


def _dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def competency_name(code: str, lang: str) -> str:
    known = KNOWN_CONSTRUCTS.get(KOMPETENSI_PREFIX + code)
    if known is None:
        return code.replace("_", " ").capitalize()
    return known.name_id if lang == "id" else known.name_en


def construct_name(code: str, lang: str) -> str:
    known = KNOWN_CONSTRUCTS.get(code)
    if known is None:
        return code.split(".", 1)[-1].replace("_", " ").capitalize()
    return known.name_id if lang == "id" else known.name_en


def aspect_name(code: str, lang: str) -> str:
    key = f"report.aspect_{code}"
    text = translate(lang, key)
    return code.replace("_", " ").capitalize() if text == key else text


def _competency_order(code: str) -> tuple[int, str]:
    return (COMPETENCIES.index(code) if code in COMPETENCIES else len(COMPETENCIES), code)


@dataclass(frozen=True)
class Errors:
    """What the report needs to put an SEM beside a level: the scales' errors per (bank
    version, construct) and the versions' level rules."""
    scales: dict[tuple[int, str], ScaleError] = field(default_factory=dict)
    rules: dict[int, dict[str, Any]] = field(default_factory=dict)


def measurement(db: Session, version_ids: Iterable[int]) -> Errors:
    ids = sorted(set(version_ids))
    if not ids:
        return Errors()
    rules = {v.id: dict((v.scoring_rules or {}).get("levels") or {})
             for v in db.scalars(select(BankVersion).where(BankVersion.id.in_(ids)))}
    return Errors(measurement_errors(db, ids), rules)


def _sem_raw(score: ConstructScore, errors: Errors) -> Decimal | None:
    scale = errors.scales.get((score.bank_version_id, score.construct))
    if scale is None:
        return None
    return Decimal(str(scale.sem_percent)) * Decimal(score.max_raw) / 100


def _level_band(score: ConstructScore, errors: Errors) -> tuple[float | None, int | None,
                                                                int | None]:
    """(SEM in score points, level at score - SEM, level at score + SEM) of one construct."""
    sem = _sem_raw(score, errors)
    scale = errors.scales.get((score.bank_version_id, score.construct))
    if sem is None or scale is None:
        return None, None, None
    rule = errors.rules.get(score.bank_version_id, {}).get(score.construct)
    if rule is None:
        return scale.sem_percent, None, None
    raw, top = Decimal(score.raw), Decimal(score.max_raw)
    return (scale.sem_percent, levels.level_for(raw - sem, rule, top),
            levels.level_for(raw + sem, rule, top))


def _aspect_sem(parts: Sequence[ConstructScore], errors: Errors) -> float | None:
    """An aspect pools its constructs' raw scores over their pooled maximum, so its error is
    the root of the summed (independent) error variances over that maximum."""
    sems = [_sem_raw(p, errors) for p in parts]
    top = sum((Decimal(p.max_raw) for p in parts), Decimal(0))
    if not parts or any(s is None for s in sems) or top <= 0:
        return None
    variance = sum((s * s for s in sems if s is not None), Decimal(0))
    return float(variance.sqrt() / top * 100)


@dataclass(frozen=True)
class Person:
    """Who sat the test, with the job they had on this session's roster (the participant row
    holds today's job; a report is about the day of the test)."""
    nip: str
    name: str
    job_group: str
    grade: str
    position: str
    unit: str

    @classmethod
    def at_the_time(cls, person: Participant, entry: RosterEntry) -> Person:
        job = job_at_the_time(entry, person)
        return cls(person.nip, person.name, job.job_group, job.grade, job.position, job.unit)


def _build(session: TestSession, person: Person, attempt: Attempt | None,
           result: Result | None, scores: Sequence[ConstructScore], *, lang: str,
           zone: ZoneInfo, errors: Errors | None = None) -> ParticipantReport:
    when = (attempt.submitted_at if attempt is not None and attempt.submitted_at
            else session.starts_at)
    report = ParticipantReport(
        session_code=session.code, session_name=session.name, nip=person.nip, name=person.name,
        job_group=person.job_group, grade=person.grade, position=person.position,
        unit=person.unit,
        status=attempt.state.value if attempt is not None else "absent",
        date=when.astimezone(zone))
    if result is None:
        return report
    detail = result.detail or {}
    config = detail.get("config") or {}
    report.scored = True
    validity = detail.get("validity") or {}
    if withheld(validity):
        report.not_scoreable = [validity_reason(r, lang) for r in validity.get("reasons", [])]
    elif validity.get("accepted"):
        report.accepted = dict(validity["accepted"])
    report.job_key = detail.get("job_key", "")
    report.purpose = config.get("purpose", "mapping")
    required: dict[str, int] = detail.get("required") or {}
    achieved: dict[str, int] = detail.get("achieved") or {}
    gaps: dict[str, int] = detail.get("gaps") or {}
    errors = errors or Errors()
    by_construct = {score.construct: score for score in scores}
    for code in sorted(set(required) | set(achieved), key=_competency_order):
        competency = CompetencyLine(code, competency_name(code, lang), required.get(code),
                                    achieved.get(code), gaps.get(code))
        score = by_construct.get(KOMPETENSI_PREFIX + code)
        if score is not None and competency.achieved is not None:
            competency.sem, competency.low, competency.high = _level_band(score, errors)
        report.competencies.append(competency)
    bands = cast("tuple[Decimal, Decimal]",  # two bounds, as the scoring settings hold
                 tuple(Decimal(str(b)) for b in config.get("potensi_bands") or (60, 80)))
    by_aspect: dict[str, list[ConstructScore]] = {}
    for score in scores:
        if not score.construct.startswith(KOMPETENSI_PREFIX):
            by_aspect.setdefault(aspect_of(score.construct), []).append(score)
    for code, percent in sorted((detail.get("aspects") or {}).items()):
        value = _dec(percent)
        parts = sorted(by_aspect.get(code, []), key=lambda s: s.construct)
        line = AspectLine(code, aspect_name(code, lang), value,
                          engine.potensi_band(value, bands) if value is not None else "",
                          sem=_aspect_sem(parts, errors))
        report.aspects.append(line)
        if len(parts) == 1:
            line.theta, line.theta_se = parts[0].theta, parts[0].theta_se
        elif any(p.theta is not None for p in parts):
            for part in parts:
                report.aspects.append(AspectLine(
                    part.construct, construct_name(part.construct, lang), part.percent, "",
                    part.theta, part.theta_se, sub=True, sem=_aspect_sem([part], errors)))
    report.potensi_score = _dec(detail.get("potensi_score"))
    report.potensi_band = result.potensi_band or ""
    report.jpm = result.jpm
    report.combined_jpm = _dec(detail.get("combined_jpm"))
    report.category = result.category or ""
    report.strengths = [competency_name(c, lang) for c in detail.get("strengths") or []]
    report.development = [competency_name(c, lang)
                          for c in detail.get("development_areas") or []]
    report.nine_box = result.nine_box
    report.performance = detail.get("performance")
    if report.nine_box is not None:
        report.box_action = box_action(report.nine_box, lang)
        report.box_placement = box_placement(report.nine_box, lang)
    report.recommendation = recommendation(category=report.category, nine_box=report.nine_box,
                                           development=report.development, lang=lang)
    if report.not_scoreable:  # no judgement to recommend from: say why instead
        report.recommendation = " ".join([translate(lang, "validity.explained"),
                                          "; ".join(report.not_scoreable) + "."])
        report.category = translate(lang, "validity.not_scoreable")
    return report


def _rows(db: Session, session: TestSession, nip: str | None = None):
    query = (select(Participant, RosterEntry, Attempt)
             .join(RosterEntry, RosterEntry.participant_id == Participant.id)
             .outerjoin(Attempt, (Attempt.roster_entry_id == RosterEntry.id)
                   & (Attempt.state != AttemptState.prepared))
             .where(RosterEntry.session_id == session.id).order_by(Participant.nip))
    if nip is not None:
        query = query.where(Participant.nip == nip)
    return [(Person.at_the_time(person, entry), attempt)
            for person, entry, attempt in db.execute(query)]


def participant_report(db: Session, *, session: TestSession, nip: str, lang: str = "id",
                       zone: ZoneInfo | str = "Asia/Jakarta") -> ParticipantReport | None:
    """The report of one participant on the session's roster (None when not on it); a
    participant without a result yet gets identity and status only."""
    rows = _rows(db, session, nip.strip())
    if not rows:
        return None
    person, attempt = rows[0]
    result = scores = None
    if attempt is not None:
        result = db.scalar(select(Result).where(Result.attempt_id == attempt.id))
        scores = list(db.scalars(select(ConstructScore).where(
            ConstructScore.attempt_id == attempt.id)))
    return _build(session, person, attempt, result, scores or [], lang=lang,
                  zone=ZoneInfo(zone) if isinstance(zone, str) else zone,
                  errors=measurement(db, {s.bank_version_id for s in scores or []}))


def session_reports(db: Session, *, session: TestSession, lang: str = "id",
                    zone: ZoneInfo | str = "Asia/Jakarta") -> list[ParticipantReport]:
    """The reports of every participant of the session who has a result, in NIP order
    (a handful of queries whatever the roster size)."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    rows = [(p, a) for p, a in _rows(db, session) if a is not None]
    ids = [a.id for _, a in rows]
    results: dict[int, Result] = {}
    scores: dict[int, list[ConstructScore]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        results.update((r.attempt_id, r) for r in db.scalars(
            select(Result).where(Result.attempt_id.in_(chunk))))
        for score in db.scalars(select(ConstructScore).where(
                ConstructScore.attempt_id.in_(chunk))):
            scores.setdefault(score.attempt_id, []).append(score)
    errors = measurement(db, {s.bank_version_id for group in scores.values() for s in group})
    return [_build(session, person, attempt, results[attempt.id], scores.get(attempt.id, []),
                   lang=lang, zone=zone, errors=errors)
            for person, attempt in rows if attempt.id in results]


def report_pdf(report: ParticipantReport, lang: str = "id") -> bytes:
    return individual_report_pdf(report.individual_report(), lang=lang)


def pdf_filename(nip: str, name: str, lang: str = "id") -> str:
    """``laporan-<nip>-<name>.pdf`` with only safe characters (also the zip's entry names)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:60] or "peserta"
    return f"{'laporan' if lang == 'id' else 'report'}-{nip}-{slug}.pdf"


def nine_box_groups(rows: Iterable[tuple[str, str, int | None]]
                    ) -> tuple[dict[int, list[tuple[str, str]]], list[tuple[str, str]]]:
    """(name, nip, box) rows -> ({box: [(name, nip)...]} for every box, [unplaced])."""
    boxes: dict[int, list[tuple[str, str]]] = {box: [] for box in BOXES}
    unplaced: list[tuple[str, str]] = []
    for name, nip, box in rows:
        (boxes.get(box, unplaced) if box is not None else unplaced).append((name, nip))

    def key(pair: tuple[str, str]) -> tuple[str, str]:
        return pair[0].casefold(), pair[1]

    return {b: sorted(v, key=key) for b, v in boxes.items()}, sorted(unplaced, key=key)

