"""People across time: find a person by NIP or name, and one person's history, every seat and
attempt across all sessions and programmes, with the job they had at each test and the trend
of their competency levels (docs/psychometrics.md, "A person's history").

The job at the time of a test is the one kept on that session's roster entry; a seat made
before the roster kept it has none, and then today's job (the participant row) is shown. The
status of each attempt is the programme results' (``Candidate.status``), so both pages use the
same words; only trusted results (scoreable or accepted) give a JPM, a category, a band, a box
and a point of the trend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.delivery.models import Attempt, AttemptState
from app.programmes.models import Programme
from app.programmes.results import Candidate, ShowsCandidate
from app.scoring.models import Result, ValidityDecision
from app.sessions.models import (
    Job,
    Participant,
    RosterEntry,
    TestSession,
    clean_nip,
    current_job,
    job_at_the_time,
)

FIND_LIMIT = 50
UP, DOWN, SAME = "up", "down", "same"


@dataclass
class HistoryEntry(ShowsCandidate):
    """One seat (with its attempt, if any) of the person, in one session."""
    candidate: Candidate
    date: datetime
    session_room: str
    programme_code: str
    programme_name: str
    job: Job

    @property
    def shown(self) -> Candidate:
        return self.candidate

    @property
    def trusted(self) -> bool:
        return self.candidate.trusted

    @property
    def attempt_id(self) -> int | None:
        return self.candidate.attempt.id if self.candidate.attempt is not None else None


@dataclass
class TrendPoint:
    level: int
    change: str = ""  # UP, DOWN, SAME from the previous trusted level; "" for the first


@dataclass
class Trend:
    competency: str
    # One cell per trusted test (PersonHistory.columns), None where it was not measured.
    points: list[TrendPoint | None]

    @property
    def levels(self) -> list[int]:
        return [p.level for p in self.points if p is not None]

    @property
    def changes(self) -> list[str]:
        return [p.change for p in self.points if p is not None]


@dataclass
class PersonHistory:
    person: Participant
    job: Job  # today's
    entries: list[HistoryEntry] = field(default_factory=list)
    columns: list[HistoryEntry] = field(default_factory=list)  # the trusted ones, by date
    trends: list[Trend] = field(default_factory=list)


def find_people(db: Session, query: str) -> list[Participant]:
    """People whose NIP starts with ``query`` (spaces ignored) or whose name contains it (any
    case), by name, at most FIND_LIMIT."""
    text = " ".join(query.split())
    if not text:
        return []
    nip = clean_nip(text)
    conditions = [func.lower(Participant.name).contains(text.lower(), autoescape=True)]
    if nip.isdigit():
        conditions.append(Participant.nip.startswith(nip, autoescape=True))
    return list(db.scalars(select(Participant).where(or_(*conditions))
                           .order_by(Participant.name, Participant.nip).limit(FIND_LIMIT)))


def _change(before: int | None, level: int) -> str:
    if before is None:
        return ""
    return UP if level > before else DOWN if level < before else SAME


def trends(columns: list[HistoryEntry]) -> list[Trend]:
    """Per competency measured by a trusted test, its level in each (date order) with the
    change from the previous test that measured it."""
    competencies = sorted({c for entry in columns for c in entry.achieved})
    made = []
    for competency in competencies:
        points: list[TrendPoint | None] = []
        before: int | None = None
        for entry in columns:
            level = entry.achieved.get(competency)
            if level is None:
                points.append(None)
                continue
            points.append(TrendPoint(level, _change(before, level)))
            before = level
        made.append(Trend(competency, points))
    return made


def person_history(db: Session, nip: str) -> PersonHistory | None:
    """The person with this NIP and every seat they had, by date (hand-in time, else the
    session's start); None for an unknown NIP."""
    person = db.scalar(select(Participant).where(Participant.nip == clean_nip(nip)))
    if person is None:
        return None
    entries: list[HistoryEntry] = []
    by_attempt: dict[int, Candidate] = {}
    for entry, session, programme, attempt in db.execute(
            select(RosterEntry, TestSession, Programme, Attempt)
            .join(TestSession, TestSession.id == RosterEntry.session_id)
            .outerjoin(Programme, Programme.id == TestSession.programme_id)
            .outerjoin(Attempt, (Attempt.roster_entry_id == RosterEntry.id)
                   & (Attempt.state != AttemptState.prepared))
            .where(RosterEntry.participant_id == person.id)):
        candidate = Candidate(session.code, session.starts_at, attempt, None, entry)
        if attempt is not None:
            by_attempt[attempt.id] = candidate
        entries.append(HistoryEntry(
            candidate=candidate, date=candidate.order()[0], session_room=session.room or "",
            programme_code=programme.code if programme is not None else "",
            programme_name=programme.name if programme is not None else "",
            job=job_at_the_time(entry, person)))
    if by_attempt:
        ids = list(by_attempt)
        for result in db.scalars(select(Result).where(Result.attempt_id.in_(ids))):
            by_attempt[result.attempt_id].result = result
        for attempt_id, decision in db.execute(
                select(ValidityDecision.attempt_id, ValidityDecision.decision)
                .where(ValidityDecision.attempt_id.in_(ids))):
            by_attempt[attempt_id].decision = decision
    entries.sort(key=lambda e: e.candidate.order())
    columns = [e for e in entries if e.candidate.result is not None and e.trusted]
    return PersonHistory(person=person, job=current_job(person), entries=entries,
                         columns=columns, trends=trends(columns))
