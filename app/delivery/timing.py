"""The server-owned clock of an attempt and its hand-in.

Every deadline is an absolute UTC timestamp in the database (attempt-wide and per section).
Pauses and extra time move those timestamps (``app.proctoring.service``); the page only
displays what is left (:func:`remaining_seconds`). Sections open one after another; a section
whose time is up closes and the next one opens at that moment, whether or not a browser is
there (:func:`refresh`, also run by the sweeper, :func:`sweep`).

An attempt ends when its time is up (``expired``) or when it is handed in (:func:`submit`,
``submitted``); both close it the same way, and a handed-in attempt is scored
(``app.scoring.service``) without the hand-in ever failing because of scoring.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app import audit
from app.delivery import content
from app.delivery.attempts import LIVE_STATES, TakerError
from app.delivery.models import DONE_STATES, Attempt, AttemptSection, AttemptState
from app.sessions.models import SessionState, TestSession


def _sections(db: Session, attempt: Attempt) -> list[AttemptSection]:
    return list(db.scalars(select(AttemptSection).where(AttemptSection.attempt_id == attempt.id)
                           .order_by(AttemptSection.section)))


def blueprint_spec(db: Session, attempt: Attempt) -> dict[str, Any]:
    """The attempt's blueprint and the rules of its sections (time limits, going back)."""
    blueprint_id = db.execute(select(TestSession.blueprint_id)
                              .where(TestSession.id == attempt.session_id)).scalar_one()
    rules = content.blueprint_rules(db, blueprint_id)
    return {"blueprint": rules, "sections": rules.sections}


def effective_deadline(attempt: Attempt, section: AttemptSection | None) -> datetime | None:
    candidates = [d for d in (attempt.deadline_at, section.deadline_at if section else None) if d]
    return min(candidates) if candidates else None


def remaining_seconds(attempt: Attempt, section: AttemptSection | None, now: datetime
                      ) -> int | None:
    deadline = effective_deadline(attempt, section)
    if deadline is None:
        return None
    reference = attempt.paused_at or now
    return max(0, int((deadline - reference).total_seconds() + 0.999))


def _open_section(section: AttemptSection, limit_s: int | None, at: datetime) -> None:
    section.started_at = at
    section.deadline_at = at + timedelta(seconds=limit_s) if limit_s else None


_SESSION_RULES = select(TestSession.state, TestSession.blueprint_id).where(
    TestSession.id == bindparam("session"))


def start(db: Session, *, attempt: Attempt, now: datetime) -> None:
    """Leave the instructions: the first section's clock (and the whole test's) starts now."""
    if attempt.state != AttemptState.not_started:
        return
    # One small query and the kept blueprint rules: every taker of a room starts at once.
    state, blueprint_id = db.execute(_SESSION_RULES, {"session": attempt.session_id}).one()
    if state == SessionState.paused:
        raise TakerError(409, "taker.error_session_paused", "the session is paused")
    rules = content.blueprint_rules(db, blueprint_id)
    attempt.state = AttemptState.active
    attempt.started_at = now
    attempt.current_section = 0
    if rules.time_limit_s:
        attempt.deadline_at = now + timedelta(seconds=rules.time_limit_s + attempt.extra_time_s)
    first = db.get_one(AttemptSection, (attempt.id, 0))  # loaded with the attempt, mostly
    _open_section(first, rules.sections[0].get("time_limit_s"), now)
    if first.deadline_at and attempt.extra_time_s:
        first.deadline_at += timedelta(seconds=attempt.extra_time_s)
    db.flush()


def refresh(db: Session, *, attempt: Attempt, now: datetime) -> None:
    """Apply what the clock says: close sections and the attempt whose time is up."""
    if attempt.state != AttemptState.active:
        return
    current = db.get(AttemptSection, (attempt.id, attempt.current_section))
    if not any(d and now >= d for d in (attempt.deadline_at, current.deadline_at if current
                                         else None)):
        return  # the common case: nothing is due, no further queries
    spec = blueprint_spec(db, attempt)
    sections = _sections(db, attempt)
    while attempt.state == AttemptState.active:
        current = sections[attempt.current_section]
        if attempt.deadline_at and now >= attempt.deadline_at:
            _finish(attempt, current, at=attempt.deadline_at, state=AttemptState.expired,
                    reason="time")
            return
        if current.deadline_at and now >= current.deadline_at:
            if attempt.current_section + 1 < len(sections):
                _advance(attempt, sections, spec["sections"], at=current.deadline_at)
                continue
            _finish(attempt, current, at=current.deadline_at, state=AttemptState.expired,
                    reason="time")
        return


def _advance(attempt: Attempt, sections: list[AttemptSection], spec_sections: list[dict],
             *, at: datetime) -> None:
    sections[attempt.current_section].ended_at = at
    attempt.current_section += 1
    _open_section(sections[attempt.current_section],
                  spec_sections[attempt.current_section].get("time_limit_s"), at)


def _finish(attempt: Attempt, current: AttemptSection, *, at: datetime,
            state: AttemptState, reason: str) -> None:
    current.ended_at = current.ended_at or at
    attempt.state = state
    attempt.submitted_at = at
    attempt.submit_reason = reason
    attempt.paused_at = None


def next_section(db: Session, *, attempt: Attempt, now: datetime) -> None:
    """End the current section early and open the next (whose clock starts now)."""
    refresh(db, attempt=attempt, now=now)
    require_live(attempt)
    sections = _sections(db, attempt)
    if attempt.current_section + 1 >= len(sections):
        raise TakerError(409, "taker.error_last_section", "this is the last section")
    _advance(attempt, sections, blueprint_spec(db, attempt)["sections"], at=now)
    db.flush()


def require_live(attempt: Attempt) -> None:
    """Refuse (409) unless the attempt is running: not handed in, paused or not started."""
    if attempt.state in DONE_STATES:
        raise TakerError(409, "taker.error_closed", "the attempt is already closed")
    if attempt.state == AttemptState.paused:
        raise TakerError(409, "taker.error_paused", "the attempt is paused by the proctor")
    if attempt.state == AttemptState.not_started:
        raise TakerError(409, "taker.error_not_started", "the attempt has not started")


def submit(db: Session, *, attempt: Attempt, reason: str, actor: str, now: datetime,
           score: bool = True) -> None:
    """Hand in the attempt (idempotent: a second submit changes nothing) and score it, unless
    ``score`` is False (the caller scores many at once, e.g. a session's close). An attempt
    that has not started cannot be handed in (409)."""
    was_done = attempt.state in DONE_STATES
    refresh(db, attempt=attempt, now=now)
    if attempt.state in DONE_STATES:
        if not was_done and score:  # time ran out just now, and this request writes it
            score_handed_in(db, attempt, now)
        return
    if attempt.state == AttemptState.not_started:
        # The rule lives here, not in a route: the API once handed in an attempt whose clock
        # had never started (a proctor's force_submit and a session's close handle it apart).
        raise TakerError(409, "taker.error_not_started",
                         "the attempt has not started: fetch the form (GET /attempt) first")
    # Only the current section is closed: loaded with the attempt by its access token.
    _finish(attempt, db.get_one(AttemptSection, (attempt.id, attempt.current_section)),
            at=now, state=AttemptState.submitted, reason=reason)
    audit.record(db, actor=actor, action="attempt.submit", target=f"attempt:{attempt.id}",
                 now=now, data={"reason": reason})
    if score:
        score_handed_in(db, attempt, now)


def score_handed_in(db: Session, attempt: Attempt, now: datetime) -> None:
    """Score a handed-in attempt; never fails the hand-in (see scoring.service)."""
    from app.scoring.service import score_attempt_safely  # scoring reads delivery's tables

    score_attempt_safely(db, attempt=attempt, now=now)


def submit_all_active(db: Session, *, session_id: int, reason: str, actor: str,
                      now: datetime) -> int:
    """Submit every attempt of a session that is still running (session close, which then
    scores the whole session at once)."""
    count = 0
    for attempt in db.scalars(select(Attempt).where(Attempt.session_id == session_id,
                                                    Attempt.state.in_(LIVE_STATES))):
        if attempt.state == AttemptState.not_started:
            attempt.state = AttemptState.submitted
            attempt.submitted_at, attempt.submit_reason = now, reason
            continue
        attempt.paused_at = None
        attempt.state = AttemptState.active  # so refresh/submit treat it uniformly
        submit(db, attempt=attempt, reason=reason, actor=actor, now=now, score=False)
        count += 1
    db.flush()
    return count


def _due(now: datetime):
    return (select(Attempt).join(AttemptSection, (AttemptSection.attempt_id == Attempt.id)
                                 & (AttemptSection.section == Attempt.current_section))
            .where(Attempt.state == AttemptState.active)
            .where((Attempt.deadline_at <= now) | (AttemptSection.deadline_at <= now)))


def any_due(db: Session, *, now: datetime) -> bool:
    """Cheap read-only check, so the sweeper takes the write lock only when there is work."""
    return db.scalar(select(_due(now).with_only_columns(Attempt.id).limit(1).subquery().c.id)
                     ) is not None


def sweep(db: Session, *, now: datetime) -> int:
    """Close sections and attempts whose time ran out, for takers whose browser is gone."""
    due = list(db.scalars(_due(now)))
    for attempt in due:
        refresh(db, attempt=attempt, now=now)
    # Not scored here: at a deadline this closes a whole room at once, and scoring every
    # attempt in this one transaction would hold the write lock for a minute. The sweeper
    # scores them next, a few per transaction (scoring.service.score_pending).
    return len(due)
