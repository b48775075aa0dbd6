"""What a proctor does to a session and its seats: pause and resume (one, several or all),
extra time, unlock to another computer, force submit, reopen an attempt the server closed
for time, reset an attempt that has not really started, incident notes, and the public score
display switch.

Time arithmetic, the rule every action here keeps: deadlines are absolute timestamps, so a
pause freezes the attempt at ``paused_at`` and the resume moves every deadline still ahead
(the attempt's and the current section's) later by exactly the paused span, which is also
added to ``paused_total_s``. Paused time therefore never counts against anyone, whoever paused.
Extra time moves the same deadlines by the added seconds, or, before the clock started, is
kept in ``extra_time_s`` and applied when it starts.

Every action writes the audit log with actor, target and reason, in the caller's transaction.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from app import audit
from app.auth import throttle
from app.auth.models import User
from app.delivery import attempts as attempt_rules
from app.delivery import timing
from app.delivery.models import (
    DONE_STATES,
    Answer,
    AnswerEvent,
    Attempt,
    AttemptSection,
    AttemptState,
)
from app.proctoring.models import Incident
from app.scoring.models import ConstructScore, Result
from app.sessions.models import Participant, RosterEntry, SessionState, TestSession

MAX_EXTRA_MINUTES = 240
DONE = DONE_STATES


class ActionRefused(ValueError):
    """A proctor action that cannot be done now; ``key`` is a locale key (proctor.error_*)
    and ``params`` fill its placeholders. ``str()`` is the English text for the CLI."""

    def __init__(self, key: str, english: str, **params: object) -> None:
        super().__init__(english.format(**params))
        self.key, self.params = key, params


def _need_reason(reason: str) -> str:
    if not reason.strip():
        raise ActionRefused("reason_required", "give a reason; it is recorded in the audit log")
    return reason.strip()[:500]


def _target(attempt: Attempt) -> str:
    return f"attempt:{attempt.id}"


def _current_section(db: Session, attempt: Attempt) -> AttemptSection | None:
    return db.get(AttemptSection, (attempt.id, attempt.current_section))


# -- one attempt: the clock -------------------------------------------------------------------


def pause_attempt(db: Session, *, attempt: Attempt, actor: str, now: datetime,
                  reason: str = "") -> bool:
    """Freeze a running attempt (its page shows the pause and cannot save). False if it was
    not running (already paused, not started, handed in): pausing twice changes nothing."""
    timing.refresh(db, attempt=attempt, now=now)  # time that ran out is not paused
    if attempt.state != AttemptState.active:
        return False
    attempt.state = AttemptState.paused
    attempt.paused_at = now
    audit.record(db, actor=actor, action="attempt.pause", target=_target(attempt),
                 reason=reason.strip(), now=now)
    return True


def resume_attempt(db: Session, *, attempt: Attempt, actor: str, now: datetime,
                   reason: str = "") -> bool:
    """Let a paused attempt run again, every deadline moved later by the paused span."""
    if attempt.state != AttemptState.paused or attempt.paused_at is None:
        return False
    span = max(timedelta(0), now - attempt.paused_at)
    section = _current_section(db, attempt)
    if attempt.deadline_at:
        attempt.deadline_at += span
    if section is not None and section.deadline_at:
        section.deadline_at += span
    seconds = int(span.total_seconds())
    attempt.paused_total_s += seconds
    attempt.paused_at = None
    attempt.state = AttemptState.active
    audit.record(db, actor=actor, action="attempt.resume", target=_target(attempt),
                 reason=reason.strip(), now=now, data={"paused_s": seconds})
    return True


def add_extra_time(db: Session, *, attempt: Attempt, minutes: int, actor: str, now: datetime,
                   reason: str) -> None:
    """Give more time, before the clock started (kept and applied at the start) or while it
    runs or is paused (the attempt's and the current section's deadlines move)."""
    reason = _need_reason(reason)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not (
            1 <= minutes <= MAX_EXTRA_MINUTES):
        raise ActionRefused("minutes_range", "extra time is 1 to {limit} minutes",
                            limit=MAX_EXTRA_MINUTES)
    timing.refresh(db, attempt=attempt, now=now)
    if attempt.state in DONE:
        raise ActionRefused("already_done", "the attempt is already handed in")
    seconds = minutes * 60
    attempt.extra_time_s += seconds
    if attempt.state != AttemptState.not_started:  # not started: start() adds extra_time_s
        added = timedelta(seconds=seconds)
        section = _current_section(db, attempt)
        if attempt.deadline_at:
            attempt.deadline_at += added
        if section is not None and section.deadline_at:
            section.deadline_at += added
    audit.record(db, actor=actor, action="attempt.extra_time", target=_target(attempt),
                 reason=reason, now=now, data={"minutes": minutes,
                                               "total_extra_s": attempt.extra_time_s})


# -- one attempt: seat and outcome ------------------------------------------------------------


def unlock(db: Session, *, attempt: Attempt, actor: str, now: datetime, reason: str) -> None:
    """Move to another computer: the old seat is logged out at once (it can no longer save;
    its page keeps any unsent answers in its journal) and the next login on any PC takes the
    seat with the deadlines unchanged."""
    reason = _need_reason(reason)
    if attempt.state in DONE:
        raise ActionRefused("already_done", "the attempt is already handed in")
    attempt_rules.unlock_seat(db, attempt=attempt, reason=reason, actor=actor, now=now)


def force_submit(db: Session, *, attempt: Attempt, actor: str, now: datetime,
                 reason: str) -> None:
    """Hand the attempt in for the taker (cheating, illness, a taker who left)."""
    reason = _need_reason(reason)
    timing.refresh(db, attempt=attempt, now=now)
    if attempt.state in DONE:
        raise ActionRefused("already_done", "the attempt is already handed in")
    # Recorded first: scoring (inside submit) reads the proctor's reason from this row, and
    # the result says why it is not scoreable ("koneksi terputus") from its first scoring.
    audit.record(db, actor=actor, action="attempt.force_submit", target=_target(attempt),
                 reason=reason, now=now)
    attempt.paused_at = None
    if attempt.state == AttemptState.not_started:
        attempt.state = AttemptState.submitted
        attempt.submitted_at, attempt.submit_reason = now, "forced"
    else:
        attempt.state = AttemptState.active  # submit() treats every running attempt alike
        timing.submit(db, attempt=attempt, reason="forced", actor=actor, now=now)
    attempt.access_token_hmac = None


def reopen(db: Session, *, attempt: Attempt, actor: str, now: datetime, reason: str,
           minutes: int | None = None) -> int:
    """Give back an attempt that the server closed for time (a PC or the network died and the
    clock ran out while the taker could not answer): it runs again with the time it had left
    when it lost contact (from its last sign of life to the close, at least a minute), or
    ``minutes`` if the proctor says so. Every deadline still ahead moves by the same span, so
    extra time and pauses work on it as before. Its result is removed: it is scored again when
    it is handed in. Returns the seconds given. In a paused session it comes back paused."""
    reason = _need_reason(reason)
    if attempt.state != AttemptState.expired or attempt.submit_reason != "time":
        raise ActionRefused("reopen_not_expired",
                            "only an attempt the server closed for time can be reopened")
    session = db.get_one(TestSession, attempt.session_id)
    if session.state == SessionState.closed:
        raise ActionRefused("session_closed", "the session is closed")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)
                                or not 1 <= minutes <= MAX_EXTRA_MINUTES):
        raise ActionRefused("minutes_range", "extra time is 1 to {limit} minutes",
                            limit=MAX_EXTRA_MINUTES)
    closed_at = attempt.submitted_at or now
    if minutes is not None:
        seconds = minutes * 60
    else:
        contact = max([t for t in (attempt.last_seen_at, db.scalar(
            select(func.max(Answer.server_time)).where(Answer.attempt_id == attempt.id)))
            if t is not None], default=closed_at)
        seconds = max(60, int((closed_at - contact).total_seconds() + 0.999))
    # Shift every deadline by one span: the one that closed the attempt (equal to closed_at)
    # ends ``seconds`` from now, a later one keeps the margin it had over it.
    shift = now + timedelta(seconds=seconds) - closed_at
    section = _current_section(db, attempt)
    if attempt.deadline_at:
        attempt.deadline_at += shift
    if section is not None:
        if section.deadline_at:
            section.deadline_at += shift
        section.ended_at = None
    attempt.submitted_at, attempt.submit_reason = None, ""
    # Usually its PC is what died: the next login on any PC takes the seat (as after an
    # unlock); a page still open on the old PC carries on until then.
    previous_seat, attempt.workstation_id = attempt.workstation_id, None
    if session.state == SessionState.paused:
        attempt.state, attempt.paused_at = AttemptState.paused, now
    else:
        attempt.state, attempt.paused_at = AttemptState.active, None
    # The stored score belongs to the closed attempt; the sweeper (or the hand-in) scores the
    # attempt again once it is handed in, which is when a missing result is looked for.
    db.execute(delete(ConstructScore).where(ConstructScore.attempt_id == attempt.id))
    db.execute(delete(Result).where(Result.attempt_id == attempt.id))
    db.flush()
    audit.record(db, actor=actor, action="attempt.reopen", target=_target(attempt),
                 reason=reason, now=now,
                 data={"seconds": seconds, "minutes_given": minutes,
                       "closed_at": closed_at.isoformat(), "previous_seat": previous_seat})
    return seconds


def reset(db: Session, *, attempt: Attempt, actor: str, now: datetime, reason: str) -> None:
    """Throw away an attempt that has not really started (wrong person at the PC, a start
    by mistake): only while no answer was ever saved. The participant logs in again and gets
    a new form and a fresh clock; extra time already granted is kept."""
    reason = _need_reason(reason)
    if attempt.state in DONE:
        raise ActionRefused("already_done", "the attempt is already handed in")
    if db.scalar(select(exists().where(AnswerEvent.attempt_id == attempt.id))):
        raise ActionRefused("reset_answered",
                            "answers were already saved; reset is only for an attempt that "
                            "has not really started (use extra time or force submit)")
    extra = attempt.extra_time_s
    entry_id, session_id = attempt.roster_entry_id, attempt.session_id
    audit.record(db, actor=actor, action="attempt.reset", target=_target(attempt),
                 reason=reason, now=now, data={"state": attempt.state.value,
                                               "started_at": attempt.started_at.isoformat()
                                               if attempt.started_at else None})
    db.execute(delete(Answer).where(Answer.attempt_id == attempt.id))
    db.delete(attempt)
    db.flush()
    if extra:
        fresh = _new_attempt(db, entry_id, session_id)
        fresh.extra_time_s = extra


def _new_attempt(db: Session, entry_id: int, session_id: int) -> Attempt:
    attempt = Attempt(roster_entry_id=entry_id, session_id=session_id,
                      seed=secrets.randbits(62), state=AttemptState.not_started)
    db.add(attempt)
    db.flush()
    attempt_rules.build_attempt_form(db, attempt, db.get_one(TestSession, session_id))
    return attempt


def attempt_for_entry(db: Session, *, session: TestSession, entry_id: int,
                      create: bool = False) -> Attempt | None:
    """The attempt of a roster entry of this session. With ``create``, someone who has not
    logged in yet gets their attempt now (not started, no seat), so extra time can be given
    before they arrive."""
    entry = db.get(RosterEntry, entry_id)
    if entry is None or entry.session_id != session.id:
        return None
    attempt = db.scalar(select(Attempt).where(Attempt.roster_entry_id == entry.id))
    if attempt is not None and attempt.state == AttemptState.prepared:
        # Drawn in advance, nobody there yet: as if there were no attempt, except that
        # ``create`` keeps the form already drawn instead of drawing another.
        if not create or session.state == SessionState.closed:
            return None
        attempt.state = AttemptState.not_started
        db.flush()
        return attempt
    if attempt is None and create and session.state != SessionState.closed:
        attempt = _new_attempt(db, entry.id, session.id)
    return attempt


def note(db: Session, *, session: TestSession, author: User | None, text: str, now: datetime,
         attempt: Attempt | None = None, kind: str = "note") -> Incident:
    """An incident note (by a proctor) or an event that needs attention (by the server)."""
    text = text.strip()
    if not text:
        raise ActionRefused("note_required", "write what happened")
    incident = Incident(session_id=session.id, attempt_id=attempt.id if attempt else None,
                        author_id=author.id if author else None, kind=kind, note=text[:2000],
                        created_at=now)
    db.add(incident)
    db.flush()
    if author is not None:
        audit.record(db, actor=f"user:{author.username}", action="incident.note",
                     target=_target(attempt) if attempt else f"session:{session.code}",
                     now=now, data={"incident": incident.id})
    return incident


# -- several at once --------------------------------------------------------------------------

BULK_ACTIONS = ("extra_time", "pause", "resume")


def bulk(db: Session, *, session: TestSession, entry_ids: Iterable[int], action: str,
         actor: str, now: datetime, minutes: int = 0, reason: str = "") -> int:
    """Extra time, pause or resume for the selected participants. All or nothing: a refusal
    for one (e.g. already handed in) refuses the whole selection, so the proctor never
    wonders who got the minutes (a savepoint: nothing of it is kept). Returns how many
    attempts changed."""
    with _all_or_nothing(db):
        return _bulk(db, session=session, entry_ids=entry_ids, action=action, actor=actor,
                     now=now, minutes=minutes, reason=reason)


def _bulk(db: Session, *, session: TestSession, entry_ids: Iterable[int], action: str,
          actor: str, now: datetime, minutes: int, reason: str) -> int:
    if session.state == SessionState.closed:
        raise ActionRefused("session_closed", "the session is closed")
    if action not in BULK_ACTIONS:
        raise ActionRefused("unknown_action", "unknown action {action}", action=action)
    ids = sorted(set(entry_ids))
    if not ids:
        raise ActionRefused("nothing_selected", "select at least one participant")
    changed = 0
    for entry_id in ids:
        attempt = attempt_for_entry(db, session=session, entry_id=entry_id,
                                    create=action == "extra_time")
        if attempt is None:
            continue  # pause/resume: not logged in yet, nothing to pause
        if action == "extra_time":
            add_extra_time(db, attempt=attempt, minutes=minutes, actor=actor, now=now,
                           reason=reason)
            changed += 1
        elif action == "pause":
            changed += pause_attempt(db, attempt=attempt, actor=actor, now=now, reason=reason)
        else:
            changed += resume_attempt(db, attempt=attempt, actor=actor, now=now, reason=reason)
    db.flush()
    return changed


def pause_all(db: Session, *, session: TestSession, actor: str, now: datetime,
              reason: str = "") -> int:
    """Freeze every running attempt of the session (the session's own pause calls this)."""
    running = db.scalars(select(Attempt).where(Attempt.session_id == session.id,
                                               Attempt.state == AttemptState.active))
    return sum(pause_attempt(db, attempt=a, actor=actor, now=now, reason=reason)
               for a in list(running))


def resume_all(db: Session, *, session: TestSession, actor: str, now: datetime) -> int:
    paused = db.scalars(select(Attempt).where(Attempt.session_id == session.id,
                                              Attempt.state == AttemptState.paused))
    return sum(resume_attempt(db, attempt=a, actor=actor, now=now) for a in list(paused))


# -- public score display ----------------------------------------------------------------------


def set_public_display(db: Session, *, session: TestSession, enabled: bool, actor: str,
                       now: datetime) -> str | None:
    """Switch the room's score screen on (a fresh unguessable key in its address, so only the
    screen the proctor opens shows it) or off (the old address stops working)."""
    settings = dict(session.settings or {})
    if enabled:
        settings["display_key"] = secrets.token_urlsafe(12)
    else:
        settings.pop("display_key", None)
    session.settings = settings
    session.public_scores = enabled
    db.flush()
    audit.record(db, actor=actor, action="session.public_display",
                 target=f"session:{session.code}", now=now, data={"enabled": enabled})
    return settings.get("display_key")


def participant_name(db: Session, attempt: Attempt) -> tuple[str, str]:
    row = db.execute(select(Participant.name, Participant.nip)
                     .join(RosterEntry, RosterEntry.participant_id == Participant.id)
                     .where(RosterEntry.id == attempt.roster_entry_id)).first()
    return (row[0], row[1]) if row else ("", "")


# -- one action on one participant (the console panel, the proctor API) --------------------------

SeatAction = Literal["extra_time", "pause", "resume", "unlock", "submit", "reopen", "reset",
                     "note", "clear_throttle"]
SEAT_ACTIONS: tuple[str, ...] = get_args(SeatAction)


class UnknownAction(ValueError):
    """Not an action a proctor can take (a bad request, not the proctor's to read)."""


class NotInSession(LookupError):
    """No such participant on this session's roster."""


@contextlib.contextmanager
def _all_or_nothing(db: Session) -> Iterator[None]:
    """The block's writes are kept only if it ends normally: a refused action leaves nothing
    behind (e.g. the attempt made for extra time before arrival) in the caller's transaction,
    which goes on and commits (a page answering the refusal may still write)."""
    savepoint = db.begin_nested()
    try:
        yield
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()


def seat_action(db: Session, *, session: TestSession, entry_id: int, action: str, user: User,
                now: datetime, minutes: int = 0, reason: str = "") -> str:
    """One proctor action on one participant, with its guards and its audit row (each
    action's own function writes it); returns the locale key of what was done. Raises
    ActionRefused (the proctor reads why), UnknownAction or NotInSession."""
    if action not in SEAT_ACTIONS:
        raise UnknownAction(action)
    with _all_or_nothing(db):
        return _seat_action(db, session=session, entry_id=entry_id, action=action, user=user,
                            now=now, minutes=minutes, reason=reason)


def _seat_action(db: Session, *, session: TestSession, entry_id: int, action: str, user: User,
                 now: datetime, minutes: int, reason: str) -> str:
    if session.state == SessionState.closed and action != "note":
        raise ActionRefused("session_closed", "the session is closed")
    actor = f"user:{user.username}"
    if action == "clear_throttle":  # works before the first login too: no attempt needed
        nip = db.scalar(select(Participant.nip).join(
            RosterEntry, RosterEntry.participant_id == Participant.id).where(
            RosterEntry.id == entry_id, RosterEntry.session_id == session.id))
        if nip is None:
            raise NotInSession(entry_id)
        throttle.clear(db, actor=actor, now=now, identifier=f"nip:{nip}", reason=reason.strip())
        return "proctor.done_clear_throttle"
    attempt = attempt_for_entry(db, session=session, entry_id=entry_id,
                                create=action in ("extra_time", "note"))
    if attempt is None:
        if db.get(RosterEntry, entry_id) is None:
            raise NotInSession(entry_id)
        raise ActionRefused("not_logged_in", "this participant has not logged in yet")
    if action == "extra_time":
        add_extra_time(db, attempt=attempt, minutes=minutes, actor=actor, now=now,
                       reason=reason)
    elif action == "pause":
        if not pause_attempt(db, attempt=attempt, actor=actor, now=now, reason=reason):
            raise ActionRefused("not_running", "only a running attempt can be paused")
    elif action == "resume":
        if session.state == SessionState.paused:
            raise ActionRefused("session_paused",
                                "the whole session is paused; resume the session")
        if not resume_attempt(db, attempt=attempt, actor=actor, now=now, reason=reason):
            raise ActionRefused("not_paused", "the attempt is not paused")
    elif action == "unlock":
        unlock(db, attempt=attempt, actor=actor, now=now, reason=reason)
    elif action == "submit":
        force_submit(db, attempt=attempt, actor=actor, now=now, reason=reason)
    elif action == "reopen":  # minutes 0 = the time it had left when it lost contact
        reopen(db, attempt=attempt, actor=actor, now=now, reason=reason,
               minutes=minutes or None)
    elif action == "reset":
        reset(db, attempt=attempt, actor=actor, now=now, reason=reason)
    else:
        note(db, session=session, author=user, text=reason, now=now, attempt=attempt)
    db.flush()
    return f"proctor.done_{action}"
