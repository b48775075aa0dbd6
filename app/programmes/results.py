"""A programme's results: one row per person (NIP) across all its sessions, from the attempt
that counts for that person.

Which attempt counts (docs/psychometrics.md, "Programmes"):

1. the attempt an admin chose for this person, with a reason (``programme_choices``);
2. otherwise the latest handed-in attempt whose result is scoreable (or accepted), so a retake
   replaces an attempt that was *tidak dapat dinilai*;
3. otherwise the latest handed-in attempt (not scoreable: listed apart with its reasons);
4. otherwise the latest attempt still running, else the person's seat with no attempt
   (absent).

"Latest" is by hand-in time, then by the session's start. The job shown is the one the person
had on that session's roster (``roster_entries``), not today's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.delivery.models import DONE_STATES, Attempt, AttemptState
from app.programmes.models import Programme, ProgrammeChoice
from app.programmes.service import ProgrammeError
from app.reports.individual import IndividualReport
from app.reports.service import session_reports
from app.scoring.models import Result, ValidityDecision
from app.scoring.validity import withheld
from app.sessions.models import (
    Participant,
    RosterEntry,
    TestSession,
    clean_nip,
    job_at_the_time,
)

RULE, ADMIN = "rule", "admin"
# The row statuses, in the order the page lists them.
STATUSES = ("scored", "accepted", "not_scoreable", "retake", "not_scored", "in_progress",
            "absent")


@dataclass
class Candidate:
    """One of a person's attempts (or seats) in the programme."""
    session_code: str
    session_starts: datetime
    attempt: Attempt | None
    result: Result | None
    entry: RosterEntry
    decision: str = ""  # a validity decision: "accepted" or "retake"

    @property
    def done(self) -> bool:
        return self.attempt is not None and self.attempt.state in DONE_STATES

    @property
    def trusted(self) -> bool:
        validity = (self.result.detail or {}).get("validity") if self.result else None
        return self.result is not None and not withheld(validity)

    @property
    def status(self) -> str:
        if self.attempt is None:
            return "absent"
        if self.result is None:
            return "in_progress" if not self.done else "not_scored"
        if not self.trusted:
            return "retake" if self.decision == "retake" else "not_scoreable"
        validity = (self.result.detail or {}).get("validity") or {}
        return "accepted" if validity.get("accepted") else "scored"

    def trusted_value(self, name: str) -> Any:
        """A result column (jpm, category, potensi_band, nine_box) when the result is trusted;
        None for a withheld or missing one."""
        return getattr(self.result, name) if self.result is not None and self.trusted else None

    @property
    def detail(self) -> dict[str, Any]:
        return dict(self.result.detail or {}) if self.result is not None else {}

    @property
    def reasons(self) -> list[dict[str, Any]]:
        """Why the result is not scoreable (empty when it is trusted or missing)."""
        if self.result is None or self.trusted:
            return []
        return list((self.detail.get("validity") or {}).get("reasons") or [])

    @property
    def achieved(self) -> dict[str, int]:
        """Levels per competency; kept for the record even when the result is withheld."""
        return {str(c): int(v) for c, v in (self.detail.get("achieved") or {}).items()}

    def order(self) -> tuple[datetime, datetime, int]:
        handed = self.attempt.submitted_at if self.attempt and self.attempt.submitted_at \
            else self.session_starts
        return (handed, self.session_starts, self.attempt.id if self.attempt else 0)


class ShowsCandidate:
    """What a row shows of one candidate: its session and status, and the trusted JPM,
    category, band and box, or the reasons the result is withheld. The programme row shows the
    attempt that counts, a person's history each of their attempts."""

    @property
    def shown(self) -> Candidate:
        raise NotImplementedError

    @property
    def session_code(self) -> str:
        return self.shown.session_code

    @property
    def status(self) -> str:
        return self.shown.status

    @property
    def jpm(self) -> Decimal | None:
        return self.shown.trusted_value("jpm")

    @property
    def category(self) -> str:
        return self.shown.trusted_value("category") or ""

    @property
    def potensi_band(self) -> str:
        return self.shown.trusted_value("potensi_band") or ""

    @property
    def nine_box(self) -> int | None:
        return self.shown.trusted_value("nine_box")

    @property
    def detail(self) -> dict[str, Any]:
        return self.shown.detail

    @property
    def reasons(self) -> list[dict[str, Any]]:
        """Why the result is not scoreable (empty when it is trusted or has no result)."""
        return self.shown.reasons

    @property
    def achieved(self) -> dict[str, int]:
        """Levels per competency; kept for the record even when the result is withheld."""
        return self.shown.achieved


@dataclass
class PersonRow(ShowsCandidate):
    nip: str
    name: str
    job_group: str
    grade: str
    position: str
    unit: str
    chosen: Candidate
    chosen_by: str  # RULE or ADMIN
    candidates: list[Candidate] = field(default_factory=list)
    choice_reason: str = ""

    @property
    def shown(self) -> Candidate:
        return self.chosen

    @property
    def potensi_score(self) -> Decimal | None:
        value = self.detail.get("potensi_score")
        return None if value in (None, "") else Decimal(str(value))

    @property
    def combined_jpm(self) -> Decimal | None:
        value = self.detail.get("combined_jpm") if self.chosen.trusted else None
        return None if value in (None, "") else Decimal(str(value))


@dataclass
class ProgrammeResults:
    programme: Programme
    rows: list[PersonRow]
    sessions: list[str]

    @property
    def by_category(self) -> Counter[str]:
        return Counter(r.category for r in self.rows if r.category)

    @property
    def by_job_group(self) -> Counter[str]:
        return Counter(r.job_group for r in self.rows)

    @property
    def by_status(self) -> Counter[str]:
        return Counter(r.status for r in self.rows)

    @property
    def competencies(self) -> list[str]:
        return sorted({c for r in self.rows for c in r.achieved})


def _pick(candidates: list[Candidate], choice: ProgrammeChoice | None
          ) -> tuple[Candidate, str]:
    if choice is not None:
        for candidate in candidates:
            if candidate.attempt is not None and candidate.attempt.id == choice.attempt_id:
                return candidate, ADMIN
    ordered = sorted(candidates, key=Candidate.order, reverse=True)
    for test in (lambda c: c.done and c.trusted, lambda c: c.done,
                 lambda c: c.attempt is not None):
        for candidate in ordered:
            if test(candidate):
                return candidate, RULE
    return ordered[0], RULE  # seats only: the latest session's (absent)


def programme_results(db: Session, programme: Programme) -> ProgrammeResults:
    """Every person on the rosters of the programme's sessions, ordered by NIP (a handful of
    queries whatever the size)."""
    found: dict[int, tuple[Participant, list[Candidate]]] = {}
    by_attempt: dict[int, Candidate] = {}
    sessions: set[str] = set()
    for entry, person, session, attempt in db.execute(
            select(RosterEntry, Participant, TestSession, Attempt)
            .join(Participant, Participant.id == RosterEntry.participant_id)
            .join(TestSession, TestSession.id == RosterEntry.session_id)
            .outerjoin(Attempt, (Attempt.roster_entry_id == RosterEntry.id)
                   & (Attempt.state != AttemptState.prepared))
            .where(TestSession.programme_id == programme.id)):
        candidate = Candidate(session.code, session.starts_at, attempt, None, entry)
        found.setdefault(person.id, (person, []))[1].append(candidate)
        sessions.add(session.code)
        if attempt is not None:
            by_attempt[attempt.id] = candidate
    ids = list(by_attempt)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for result in db.scalars(select(Result).where(Result.attempt_id.in_(chunk))):
            by_attempt[result.attempt_id].result = result
        for attempt_id, decision in db.execute(
                select(ValidityDecision.attempt_id, ValidityDecision.decision)
                .where(ValidityDecision.attempt_id.in_(chunk))):
            by_attempt[attempt_id].decision = decision
    choices = {c.participant_id: c for c in db.scalars(
        select(ProgrammeChoice).where(ProgrammeChoice.programme_id == programme.id))}
    rows = []
    for person_id, (person, candidates) in found.items():
        choice = choices.get(person_id)
        chosen, how = _pick(candidates, choice)
        job = job_at_the_time(chosen.entry, person)
        rows.append(PersonRow(
            nip=person.nip, name=person.name, job_group=job.job_group, grade=job.grade,
            position=job.position, unit=job.unit, chosen=chosen, chosen_by=how,
            candidates=sorted(candidates, key=Candidate.order),
            choice_reason=choice.reason if choice is not None and how == ADMIN else ""))
    rows.sort(key=lambda r: r.nip)
    return ProgrammeResults(programme, rows, sorted(sessions))


def choose_attempt(db: Session, *, programme: Programme, nip: str, attempt_id: int | None,
                   reason: str, actor: str, now: datetime) -> PersonRow:
    """Make ``attempt_id`` the attempt that counts for this person (None: back to the rule),
    with a reason; audited with the attempt that counted before and the one that counts now."""
    reason, nip = reason.strip(), clean_nip(nip)
    if not reason:
        raise ProgrammeError("reason")
    table = programme_results(db, programme)
    row = next((r for r in table.rows if r.nip == nip), None)
    if row is None:
        raise ProgrammeError("person_missing", nip=nip, programme=programme.code)
    ids = {c.attempt.id for c in row.candidates if c.attempt is not None}
    if attempt_id is not None and attempt_id not in ids:
        raise ProgrammeError("attempt_not_theirs", nip=nip)
    before = row.chosen.attempt.id if row.chosen.attempt is not None else None
    person_id = row.chosen.entry.participant_id
    existing = db.get(ProgrammeChoice, (programme.id, person_id))
    if attempt_id is None:
        if existing is not None:
            db.delete(existing)
    elif existing is None:
        db.add(ProgrammeChoice(programme_id=programme.id, participant_id=person_id,
                               attempt_id=attempt_id, reason=reason[:2000], decided_by=actor,
                               decided_at=now))
    else:
        existing.attempt_id, existing.reason = attempt_id, reason[:2000]
        existing.decided_by, existing.decided_at = actor, now
    db.flush()
    audit.record(db, actor=actor, action="programme.choose_attempt",
                 target=f"programme:{programme.code}", reason=reason, now=now,
                 data={"nip": nip, "before": before, "after": attempt_id})
    return next(r for r in programme_results(db, programme).rows if r.nip == nip)


def programme_reports(db: Session, programme: Programme, *, lang: str = "id",
                      zone: str = "Asia/Jakarta") -> list[IndividualReport]:
    """The individual report of every person with a result, from the attempt that counts for
    them (one session's reports at a time: the same reports a session's zip holds). A result
    that is not scoreable gives the report that says so."""
    counted: dict[str, set[str]] = {}
    for row in programme_results(db, programme).rows:
        if row.chosen.result is not None:
            counted.setdefault(row.session_code, set()).add(row.nip)
    reports = []
    for session in db.scalars(select(TestSession).where(TestSession.code.in_(sorted(counted)))
                              .order_by(TestSession.starts_at, TestSession.code)):
        wanted = counted[session.code]
        reports += [r.individual_report() for r in session_reports(db, session=session,
                                                                   lang=lang, zone=zone)
                    if r.nip in wanted]
    return sorted(reports, key=lambda r: r.nip)
