"""Test sessions: scheduling one (which freezes the bank versions it uses), its states and its
proctors. The roster and its login tokens are in ``app.sessions.roster``.

States: scheduled -> open <-> paused -> closed (final). Only an open session lets takers in;
closing hands in every attempt still running, so no result is left half-way.

Refusals are :class:`SessionError`: a ``ValueError`` whose message (English, for the CLI and
logs) says what is wrong and how to fix it, and whose :meth:`SessionError.text` gives the same
message in the admin's language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.models import Blueprint
from app.assembly.service import blueprint_version_ids
from app.auth.models import Role, User
from app.bank.service import freeze_versions
from app.delivery.models import Attempt, AttemptState
from app.i18n import translate
from app.sessions.models import ProctorAssignment, RosterEntry, SessionState, TestSession

# Starts with a letter or digit so a code is never mistaken for a command-line option.
CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
NAME_MAX, ROOM_MAX = 200, 100

# action -> (states it is allowed from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[SessionState], SessionState]] = {
    "open": (frozenset({SessionState.scheduled, SessionState.paused}), SessionState.open),
    "pause": (frozenset({SessionState.open}), SessionState.paused),
    "resume": (frozenset({SessionState.paused}), SessionState.open),
    "close": (frozenset({SessionState.scheduled, SessionState.open, SessionState.paused}),
              SessionState.closed),
}


class Word(str):
    """A message parameter that is itself a locale key (a state or verb), translated with the
    message instead of being shown raw."""


class SessionError(ValueError):
    """A refused session or roster change. ``key`` names ``sessions.error_<key>`` in the
    locale files; ``str(error)`` is the English text."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key, self.params = key, params
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:

        values = {name: translate(lang, value) if isinstance(value, Word) else value
                  for name, value in self.params.items()}
        return translate(lang, f"sessions.error_{self.key}", **values)


def session_by_code(db: Session, code: str) -> TestSession | None:
    return db.scalar(select(TestSession).where(TestSession.code == code.strip().upper()))


def _staff(db: Session, username: str) -> User:
    """An active proctor or admin account, or a SessionError saying which name is wrong."""
    name = username.strip().lower()
    user = db.scalar(select(User).where(User.username == name))
    if user is None or user.role not in (Role.proctor, Role.admin):
        raise SessionError("proctor_unknown", username=name)
    if not user.is_active:
        raise SessionError("proctor_inactive", username=name)
    return user


def create_session(db: Session, *, code: str, name: str, room: str, blueprint_code: str,
                   starts_at: datetime, ends_at: datetime,
                   proctor_usernames: Iterable[str] = (), actor: str,
                   now: datetime) -> TestSession:
    """Schedule a session and freeze every bank version its blueprint draws from: from now on
    the items a taker may see can no longer change (corrections make a new version or an
    audited key correction)."""
    code = code.strip().upper()
    name, room = name.strip() or code, room.strip()
    if not CODE_RE.match(code):
        raise SessionError("code_invalid", code=code)
    if len(name) > NAME_MAX:
        raise SessionError("name_too_long", limit=NAME_MAX)
    if len(room) > ROOM_MAX:
        raise SessionError("room_too_long", limit=ROOM_MAX)
    if session_by_code(db, code) is not None:
        raise SessionError("code_taken", code=code)
    blueprint = db.scalar(select(Blueprint).where(Blueprint.code == blueprint_code.strip()))
    if blueprint is None:
        raise SessionError("blueprint_missing", blueprint=blueprint_code.strip())
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValueError("starts_at and ends_at must be timezone-aware")
    if ends_at <= starts_at:
        raise SessionError("window")
    users: dict[int, User] = {}
    for username in proctor_usernames:
        if username.strip():
            user = _staff(db, username)
            users[user.id] = user
    session = TestSession(code=code, name=name, room=room, blueprint_id=blueprint.id,
                          starts_at=starts_at, ends_at=ends_at, state=SessionState.scheduled,
                          settings={}, created_at=now)
    db.add(session)
    db.flush()
    db.add_all(ProctorAssignment(session_id=session.id, user_id=uid) for uid in users)
    version_ids = blueprint_version_ids(db, blueprint.id)
    freeze_versions(db, version_ids)
    db.flush()
    audit.record(db, actor=actor, action="session.create", target=f"session:{code}", now=now,
                 data={"blueprint": blueprint.code, "room": room,
                       "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                       "proctors": sorted(u.username for u in users.values()),
                       "frozen_bank_versions": sorted(version_ids)})
    return session


def allowed_actions(session: TestSession) -> list[str]:
    """The state changes the session accepts now, in the order the admin page shows them."""
    return [a for a, (sources, _) in TRANSITIONS.items() if session.state in sources
            and not (a == "open" and session.state == SessionState.paused)]


def change_state(db: Session, *, session: TestSession, action: str, actor: str,
                 now: datetime, reason: str = "") -> int:
    """open / pause / resume / close. Closing hands in every attempt still running (in this
    same transaction, so a session is never closed with attempts left open). Returns how many
    attempts closing handed in (0 for the other actions)."""
    if action not in TRANSITIONS:
        raise ValueError(f"unknown session action {action!r}")
    sources, target = TRANSITIONS[action]
    if session.state not in sources:
        raise SessionError("transition", code=session.code,
                           state=Word(f"sessions.state_word_{session.state.value}"),
                           verb=Word(f"sessions.verb_{action}"))
    previous = session.state
    if target == SessionState.open and session.prepared_at is None:
        # Not prepared the day before: draw every form now, before anyone can log in.
        from app.sessions.prepare import prepare_session

        prepare_session(db, session=session, actor=actor, now=now)
    session.state = target
    session.paused_at = now if target == SessionState.paused else None
    handed_in = 0
    if SessionState.paused in (previous, target) and target != SessionState.closed:
        # Everyone's clock stops and restarts with the session: paused time is nobody's loss.
        from app.proctoring.service import pause_all, resume_all

        if target == SessionState.paused:
            pause_all(db, session=session, actor=actor, now=now, reason=reason)
        else:
            resume_all(db, session=session, actor=actor, now=now)
    if target == SessionState.closed:
        from app.delivery.timing import submit_all_active  # the taker side's own rule

        handed_in = submit_all_active(db, session_id=session.id, reason="session_closed",
                                      actor=actor, now=now)
        from app.scoring.service import score_session_safely  # every result, once more

        score_session_safely(db, session=session, now=now)
    db.flush()
    data: dict[str, Any] = {"from": previous.value}
    if target == SessionState.closed:
        data["handed_in"] = handed_in
    audit.record(db, actor=actor, action=f"session.{action}", target=f"session:{session.code}",
                 reason=reason.strip(), now=now, data=data)
    return handed_in


def open_session(db: Session, *, session: TestSession, actor: str, now: datetime) -> None:
    change_state(db, session=session, action="open", actor=actor, now=now)


def pause_session(db: Session, *, session: TestSession, actor: str, now: datetime,
                  reason: str = "") -> None:
    change_state(db, session=session, action="pause", actor=actor, now=now, reason=reason)


def resume_session(db: Session, *, session: TestSession, actor: str, now: datetime) -> None:
    change_state(db, session=session, action="resume", actor=actor, now=now)


def close_session(db: Session, *, session: TestSession, actor: str, now: datetime,
                  reason: str = "") -> int:
    return change_state(db, session=session, action="close", actor=actor, now=now,
                        reason=reason)


# -- proctors -----------------------------------------------------------------------------------


def staff_choices(db: Session) -> list[User]:
    """Who can be assigned to a session: active proctors, then admins, by username."""
    return list(db.scalars(select(User).where(User.is_active.is_(True),
                                              User.role.in_([Role.proctor, Role.admin]))
                           .order_by(User.role.desc(), User.username)))


def live_attempt_count(db: Session, session: TestSession) -> int:
    """Attempts that closing the session would hand in: logged in, working or paused."""
    from_states = (AttemptState.not_started, AttemptState.active, AttemptState.paused)
    return db.scalar(select(func.count()).select_from(Attempt).where(
        Attempt.session_id == session.id, Attempt.state.in_(from_states))) or 0


def session_proctors(db: Session, session: TestSession) -> list[User]:
    return list(db.scalars(
        select(User).join(ProctorAssignment, ProctorAssignment.user_id == User.id)
        .where(ProctorAssignment.session_id == session.id).order_by(User.username)))


def assign_proctor(db: Session, *, session: TestSession, username: str, actor: str,
                   now: datetime) -> bool:
    """Let a proctor (or admin) watch this session's console. False if already assigned."""
    user = _staff(db, username)
    if db.get(ProctorAssignment, (session.id, user.id)) is not None:
        return False
    db.add(ProctorAssignment(session_id=session.id, user_id=user.id))
    db.flush()
    audit.record(db, actor=actor, action="session.proctor_assign",
                 target=f"session:{session.code}", now=now, data={"user": user.username})
    return True


def unassign_proctor(db: Session, *, session: TestSession, username: str, actor: str,
                     now: datetime) -> bool:
    """Take a proctor off this session. False if they were not assigned."""
    name = username.strip().lower()
    user = db.scalar(select(User).where(User.username == name))
    assignment = db.get(ProctorAssignment, (session.id, user.id)) if user else None
    if assignment is None:
        return False
    db.delete(assignment)
    db.flush()
    audit.record(db, actor=actor, action="session.proctor_unassign",
                 target=f"session:{session.code}", now=now, data={"user": name})
    return True


@dataclass
class SessionRow:
    code: str
    name: str
    room: str
    state: str
    starts_at: datetime
    ends_at: datetime
    participants: int


def session_rows(db: Session, *, proctor: User | None = None) -> list[SessionRow]:
    """Sessions with their roster size; only those assigned to ``proctor`` when given."""
    roster = (
        select(RosterEntry.session_id, func.count().label("n"))
        .group_by(RosterEntry.session_id)
        .subquery()
    )
    query = (
        select(TestSession, func.coalesce(roster.c.n, 0))
        .outerjoin(roster, roster.c.session_id == TestSession.id)
        .order_by(TestSession.starts_at.desc(), TestSession.code)
    )
    if proctor is not None:
        query = query.join(
            ProctorAssignment,
            (ProctorAssignment.session_id == TestSession.id)
            & (ProctorAssignment.user_id == proctor.id),
        )
    return [
        SessionRow(s.code, s.name, s.room, s.state.value, s.starts_at, s.ends_at, n)
        for s, n in db.execute(query)
    ]
