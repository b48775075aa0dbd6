"""The live console's picture of a session, read entirely from the database.

Nothing here is kept in a process: any app worker computes the same rows for the same
session, which is what lets several workers (PostgreSQL) serve one room. The console stream
asks for a cheap :func:`fingerprint` every second and recomputes :func:`console_state` only
when it changed (or every few seconds, for the time-derived states such as "disconnected").

Reads are a fixed handful of queries whatever the roster size: roster with attempts and
their current section, answer counts grouped per attempt, form sizes grouped per attempt,
and the recent events that need attention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.orm import Session

from app import i18n
from app.auth import throttle
from app.auth.models import LoginThrottle
from app.delivery.models import (
    DONE_STATES,
    Answer,
    Attempt,
    AttemptItem,
    AttemptSection,
    AttemptState,
)
from app.delivery.timing import effective_deadline, remaining_seconds
from app.proctoring.models import Incident
from app.scoring.models import Result
from app.sessions.models import Participant, RosterEntry, TestSession

# A taker's page asks the server for its status every 10 s (and saves on every change), so a
# minute of silence means the page is gone: a frozen PC, a closed tab or a cut cable.
SILENCE_S = 45
ATTENTION_WINDOW = timedelta(minutes=20)
STATES = ("absent", "reading", "answering", "paused", "disconnected", "submitted", "expired")


@dataclass
class Seat:
    entry_id: int
    nip: str
    name: str
    seat: str
    state: str  # one of STATES
    attempt_id: int | None = None
    answered: int = 0
    total: int = 0
    flagged: int = 0
    remaining_s: int | None = None
    seen_ago_s: int | None = None
    # Absolute times, so a row's HTML changes only when its data does (the page ticks them).
    deadline: datetime | None = None  # while the clock runs
    last_seen: datetime | None = None
    extra_min: int = 0
    attention: list[tuple[str, str]] = field(default_factory=list)  # (kind, note)

    @property
    def attention_by_kind(self) -> list[tuple[str, int, str]]:
        """One (kind, how many, the latest note) per kind, in the order they first came:
        fourteen failed-save reports are one badge on the row, not fourteen."""
        grouped: dict[str, list] = {}
        for kind, note in self.attention:
            entry = grouped.setdefault(kind, [kind, 0, ""])
            entry[1] += 1
            entry[2] = note
        return [(kind, count, note) for kind, count, note in grouped.values()]


@dataclass
class ConsoleState:
    session_id: int
    code: str
    name: str
    room: str
    session_state: str
    ends_at: datetime
    now: datetime
    seats: list[Seat]
    public_scores: bool

    @property
    def counters(self) -> dict[str, int]:
        states = [s.state for s in self.seats]
        return {"present": sum(s not in ("absent", "submitted", "expired") for s in states),
                "answering": states.count("answering"),
                "submitted": states.count("submitted") + states.count("expired"),
                "absent": states.count("absent"),
                "attention": sum(1 for s in self.seats if s.attention),
                "total": len(states)}


def _seat_state(attempt: Attempt | None, now: datetime) -> str:
    if attempt is None:
        return "absent"
    if attempt.state == AttemptState.submitted:
        return "submitted"
    if attempt.state == AttemptState.expired:
        return "expired"
    if attempt.state == AttemptState.paused:
        return "paused"
    seen = attempt.last_seen_at
    if seen is None or (now - seen).total_seconds() > SILENCE_S:
        return "disconnected"
    return "reading" if attempt.state == AttemptState.not_started else "answering"


def console_state(db: Session, *, session: TestSession, now: datetime) -> ConsoleState:
    """Every participant on the roster with what the proctor needs to see, by name."""
    rows = db.execute(
        select(RosterEntry.id, RosterEntry.seat, Participant.nip, Participant.name, Attempt,
               AttemptSection)
        .join(Participant, Participant.id == RosterEntry.participant_id)
        .outerjoin(Attempt, (Attempt.roster_entry_id == RosterEntry.id)
                   & (Attempt.state != AttemptState.prepared))
        .outerjoin(AttemptSection, (AttemptSection.attempt_id == Attempt.id)
                   & (AttemptSection.section == Attempt.current_section))
        .where(RosterEntry.session_id == session.id)).all()
    answered_expr = func.sum(case((cast(Answer.response, Text).in_(("null", "[]")), 0),
                                  (Answer.response.is_(None), 0), else_=1))
    flagged_expr = func.sum(case((Answer.flagged, 1), else_=0))
    counts = {a: (n or 0, f or 0) for a, n, f in db.execute(
        select(Answer.attempt_id, answered_expr, flagged_expr)
        .join(Attempt, Attempt.id == Answer.attempt_id)
        .where(Attempt.session_id == session.id).group_by(Answer.attempt_id))}
    totals = dict(db.execute(
        select(AttemptItem.attempt_id, func.count())
        .join(Attempt, Attempt.id == AttemptItem.attempt_id)
        .where(Attempt.session_id == session.id).group_by(AttemptItem.attempt_id)).all())
    attention: dict[int, list[tuple[str, str]]] = {}
    for attempt_id, kind, note in db.execute(
            select(Incident.attempt_id, Incident.kind, Incident.note)
            .where(Incident.session_id == session.id, Incident.author_id.is_(None),
                   Incident.attempt_id.is_not(None),
                   Incident.created_at >= now - ATTENTION_WINDOW)
            .order_by(Incident.id)):
        if attempt_id is not None:  # filtered above; for the type checker
            attention.setdefault(attempt_id, []).append((kind, note))
    throttled = throttled_nips(db, now=now)
    seats = []
    for entry_id, seat, nip, name, attempt, section in rows:
        state = _seat_state(attempt, now)
        item = Seat(entry_id=entry_id, nip=nip, name=name, seat=seat, state=state)
        if attempt is not None:
            item.attempt_id = attempt.id
            item.seat = seat or (attempt.workstation_id or "")
            item.answered, item.flagged = counts.get(attempt.id, (0, 0))
            item.total = totals.get(attempt.id, 0)
            item.extra_min = attempt.extra_time_s // 60
            if attempt.last_seen_at is not None:
                item.last_seen = attempt.last_seen_at
                item.seen_ago_s = max(0, int((now - attempt.last_seen_at).total_seconds()))
            if state not in ("submitted", "expired"):
                item.remaining_s = remaining_seconds(attempt, section, now)
                if attempt.state == AttemptState.active:
                    item.deadline = effective_deadline(attempt, section)
            item.attention = attention.get(attempt.id, [])
            if state == "disconnected" and attempt.state == AttemptState.active:
                item.attention = [*item.attention, ("silent", "")]
        if nip in throttled:  # the participant waits at the login page: the proctor can clear
            item.attention = [*item.attention, ("login_throttled", f"{throttled[nip]} s")]
        seats.append(item)
    # Rows that need the proctor come first (then by name): in a room of 300 they would
    # otherwise be somewhere down the list.
    seats.sort(key=lambda s: (not s.attention, s.name.casefold(), s.nip))
    return ConsoleState(session_id=session.id, code=session.code, name=session.name,
                        room=session.room, session_state=session.state.value,
                        ends_at=session.ends_at, now=now, seats=seats,
                        public_scores=session.public_scores)


# What the server itself writes as an incident's note (app/delivery, app/auth), read back as
# data, so the console says it in the proctor's language: rows already stored keep working.
_SYSTEM_NOTES = {
    "seat_refused": re.compile(r"(?P<seat>.*) \(held by (?P<held_by>.*)\)", re.S),
    "save_failures": re.compile(r"(?P<count>\d+) failed save tries before a save got through"),
    "login_throttled": re.compile(r"(?P<seconds>\d+) s"),
}


def note_text(lang: str, kind: str, note: str) -> str:
    """An incident's note as the proctor reads it: the server's own notes (a second PC
    refused, failed saves, a locked login) as a translated sentence; a proctor's words, and
    anything not recognised, as written."""
    pattern = _SYSTEM_NOTES.get(kind)
    match = pattern.fullmatch(note) if pattern else None
    if match is None:
        return note
    return i18n.translate(lang, f"console.note_{kind}", **match.groupdict())


_NIP_LOCKS = (LoginThrottle.key.like("acctip:nip:%"), LoginThrottle.locked_until.is_not(None))


def throttled_nips(db: Session, *, now: datetime) -> dict[str, int]:
    """NIPs whose login is locked by the throttle now, with the seconds left."""
    waits: dict[str, int] = {}
    for lock in throttle.active_locks(db, now=now, identifier_prefix="nip:"):
        nip = lock.identifier.removeprefix("nip:")
        waits[nip] = max(waits.get(nip, 0), lock.wait_s)
    return waits


def fingerprint(db: Session, *, session_id: int) -> tuple:
    """Changes whenever anything the console shows changes (answers, states, clocks, seats,
    roster, incidents): two cheap aggregate queries instead of the whole picture."""
    attempts = db.execute(
        select(func.count(), func.sum(Attempt.last_seq), func.max(Attempt.last_seen_at),
               func.sum(Attempt.extra_time_s), func.sum(Attempt.paused_total_s),
               func.sum(case((Attempt.state == AttemptState.active, 1), else_=0)),
               func.sum(case((Attempt.state == AttemptState.paused, 1), else_=0)),
               func.sum(case((Attempt.state == AttemptState.not_started, 1), else_=0)),
               func.sum(Attempt.current_section), func.max(Attempt.submitted_at),
               func.count(Attempt.workstation_id))
        .where(Attempt.session_id == session_id)).one()
    other = db.execute(select(
        select(func.count()).where(RosterEntry.session_id == session_id).scalar_subquery(),
        select(func.max(Incident.id)).where(Incident.session_id == session_id)
        .scalar_subquery(),
        select(TestSession.state).where(TestSession.id == session_id).scalar_subquery(),
        select(TestSession.public_scores).where(TestSession.id == session_id)
        .scalar_subquery(),
        # a participant's login locked or cleared (attention on the row)
        select(func.count()).where(*_NIP_LOCKS).scalar_subquery(),
        select(func.max(LoginThrottle.locked_until)).where(*_NIP_LOCKS)
        .scalar_subquery())).one()
    return tuple(attempts) + tuple(other)


@dataclass
class BoardRow:
    name: str
    submitted_at: datetime
    score: str | None


def board_rows(db: Session, *, session: TestSession) -> list[BoardRow]:
    """The room's score screen: who has handed in, newest first, with the total score once
    scoring has produced it (until then only that they are done)."""
    rows = db.execute(
        select(Participant.name, Attempt.submitted_at, Result.total_score)
        .join(RosterEntry, RosterEntry.participant_id == Participant.id)
        .join(Attempt, Attempt.roster_entry_id == RosterEntry.id)
        .outerjoin(Result, Result.attempt_id == Attempt.id)
        .where(Attempt.session_id == session.id,
               Attempt.state.in_(DONE_STATES))
        .order_by(Attempt.submitted_at.desc(), Participant.name)).all()
    return [BoardRow(name, at, None if score is None else f"{score:.0f}")
            for name, at, score in rows if at is not None]  # handed in: always stamped
