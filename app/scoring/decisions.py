"""An admin's decision on an attempt that is "tidak dapat dinilai" (app/scoring/validity.py),
one per attempt, with a reason: accept it, so that it is scored as usual from then on, or
schedule a retake in another session, so that the retake's result counts instead and this one
stays withheld. One function each for the report page and ``cact results accept`` / ``cact
results retake``; audited, and the attempt is rescored in the same transaction (its
``detail["validity"]`` then carries the decision)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.delivery.models import Attempt
from app.scoring.models import Result, ValidityDecision
from app.scoring.service import score_attempt
from app.sessions.models import Participant, RosterEntry, SessionState, TestSession, clean_nip

ACCEPTED = "accepted"
RETAKE = "retake"

# Puts a participant on a session's roster with a fresh login token, as the roster import does
# (app/sessions/roster.py; the caller passes it: scoring sits below sessions).
Enrol = Callable[[TestSession, Participant], object]


class DecisionRefused(ValueError):
    """Why a decision cannot be taken: a message key of frontend/locales and its values."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


def _undecided_not_scoreable(db: Session, session: TestSession, nip: str
                             ) -> tuple[Attempt, Participant, dict[str, Any]]:
    """The participant's attempt in this session, its participant and validity indicators;
    refused for one without a result, one already decided and one that is scoreable."""
    found = db.execute(
        select(Attempt, Participant)
        .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
        .join(Participant, Participant.id == RosterEntry.participant_id)
        .where(Attempt.session_id == session.id, Participant.nip == clean_nip(nip))).first()
    result = (db.scalar(select(Result).where(Result.attempt_id == found[0].id))
              if found is not None else None)
    if found is None or result is None:
        raise DecisionRefused("validity.error_no_result", nip=clean_nip(nip))
    attempt, person = found[0], found[1]
    decided = db.get(ValidityDecision, attempt.id)
    if decided is not None and decided.decision == RETAKE:
        raise DecisionRefused("validity.error_retake_already", nip=clean_nip(nip))
    if decided is not None:
        raise DecisionRefused("validity.error_already", nip=clean_nip(nip))
    check = (result.detail or {}).get("validity") or {}
    if check.get("scoreable", True):
        raise DecisionRefused("validity.error_scoreable", nip=clean_nip(nip))
    return attempt, person, check


def accept(db: Session, *, session: TestSession, nip: str, reason: str, actor: str,
           now: datetime) -> Result:
    """Accept the not-scoreable attempt of this participant in this session: record the
    decision, audit it with the reasons the attempt was withheld for, and rescore it (it then
    gets JPM, category, band and box). Refused without a reason, for a participant without a
    result, for a result that is scoreable and for one already decided."""
    reason = reason.strip()
    if not reason:
        raise DecisionRefused("validity.error_reason")
    attempt, _, check = _undecided_not_scoreable(db, session, nip)
    db.add(ValidityDecision(attempt_id=attempt.id, decision=ACCEPTED, reason=reason[:2000],
                            decided_by=actor, decided_at=now))
    db.flush()
    audit.record(db, actor=actor, action="result.accept_not_scoreable",
                 target=f"attempt:{attempt.id}", reason=reason, now=now,
                 data={"session": session.code, "nip": clean_nip(nip),
                       "reasons": check.get("reasons", [])})
    return score_attempt(db, attempt=attempt, now=now)


def retake_of(db: Session, *, session: TestSession, nip: str) -> dict[str, Any] | None:
    """The retake scheduled for this participant's attempt in this session (by, reason, at,
    session: the target's code), as its result records it; None when there is none."""
    detail = db.scalar(
        select(Result.detail).join(Attempt, Attempt.id == Result.attempt_id)
        .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
        .join(Participant, Participant.id == RosterEntry.participant_id)
        .where(Attempt.session_id == session.id, Participant.nip == clean_nip(nip)))
    retake = ((detail or {}).get("validity") or {}).get("retake")
    return dict(retake) if retake else None


def retake_targets(db: Session, session: TestSession) -> list[TestSession]:
    """The sessions a retake can be scheduled in: every one not closed, other than this."""
    return list(db.scalars(select(TestSession).where(
        TestSession.id != session.id, TestSession.state != SessionState.closed)
        .order_by(TestSession.starts_at, TestSession.code)))


def schedule_retake(db: Session, *, session: TestSession, nip: str, target_session: TestSession,
                    reason: str, actor: str, now: datetime, enrol: Enrol) -> Result:
    """Schedule a retake of the not-scoreable attempt of this participant in this session:
    record the decision, put the person on ``target_session``'s roster with a fresh login
    token (``enrol``), audit it (the reasons the attempt was withheld for, the target session,
    the admin's reason) and rescore the attempt, which stays withheld (no JPM, category, band or
    box): the retake's own result counts instead. Refused without a reason, for a participant
    without a result, for a result that is scoreable or already decided, for a target session
    that is this one or closed, and for a person already on the target's roster."""
    reason = reason.strip()
    if not reason:
        raise DecisionRefused("validity.error_retake_reason")
    attempt, person, check = _undecided_not_scoreable(db, session, nip)
    if target_session.id == session.id:
        raise DecisionRefused("validity.error_retake_same", session=session.code)
    if target_session.state == SessionState.closed:
        raise DecisionRefused("validity.error_retake_closed", session=target_session.code)
    if db.scalar(select(RosterEntry.id).where(RosterEntry.session_id == target_session.id,
                                              RosterEntry.participant_id == person.id)):
        raise DecisionRefused("validity.error_retake_on_roster", nip=person.nip,
                              session=target_session.code)
    db.add(ValidityDecision(attempt_id=attempt.id, decision=RETAKE, reason=reason[:2000],
                            decided_by=actor, decided_at=now))
    db.flush()
    enrol(target_session, person)
    audit.record(db, actor=actor, action="result.retake", target=f"attempt:{attempt.id}",
                 reason=reason, now=now,
                 data={"session": session.code, "nip": person.nip, "to": target_session.code,
                       "reasons": check.get("reasons", [])})
    return score_attempt(db, attempt=attempt, now=now)
