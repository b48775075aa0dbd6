"""An admin's decision on an attempt that is "tidak dapat dinilai" (app/scoring/validity.py):
accept it, with a reason, so that it is scored as usual from then on. One function for the
report page and ``cact results accept``; audited, and the attempt is rescored in the same
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.delivery.models import Attempt
from app.scoring.models import Result, ValidityDecision
from app.scoring.service import score_attempt
from app.sessions.models import Participant, RosterEntry, TestSession, clean_nip

ACCEPTED = "accepted"


class DecisionRefused(ValueError):
    """Why a decision cannot be taken: a message key of frontend/locales and its values."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


def accept(db: Session, *, session: TestSession, nip: str, reason: str, actor: str,
           now: datetime) -> Result:
    """Accept the not-scoreable attempt of this participant in this session: record the
    decision, audit it with the reasons the attempt was withheld for, and rescore it (it then
    gets JPM, category, band and box). Refused without a reason, for a participant without a
    result, for a result that is scoreable and for one already accepted."""
    reason = reason.strip()
    if not reason:
        raise DecisionRefused("validity.error_reason")
    attempt = db.scalar(
        select(Attempt).join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
        .join(Participant, Participant.id == RosterEntry.participant_id)
        .where(Attempt.session_id == session.id, Participant.nip == clean_nip(nip)))
    result = (db.scalar(select(Result).where(Result.attempt_id == attempt.id))
              if attempt is not None else None)
    if attempt is None or result is None:
        raise DecisionRefused("validity.error_no_result", nip=clean_nip(nip))
    if db.get(ValidityDecision, attempt.id) is not None:
        raise DecisionRefused("validity.error_already", nip=clean_nip(nip))
    check = (result.detail or {}).get("validity") or {}
    if check.get("scoreable", True):
        raise DecisionRefused("validity.error_scoreable", nip=clean_nip(nip))
    db.add(ValidityDecision(attempt_id=attempt.id, decision=ACCEPTED, reason=reason[:2000],
                            decided_by=actor, decided_at=now))
    db.flush()
    audit.record(db, actor=actor, action="result.accept_not_scoreable",
                 target=f"attempt:{attempt.id}", reason=reason, now=now,
                 data={"session": session.code, "nip": clean_nip(nip),
                       "reasons": check.get("reasons", [])})
    return score_attempt(db, attempt=attempt, now=now)
