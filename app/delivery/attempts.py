"""A test taker's attempt: who sits where. The login (NIP + token, the throttle, the seat
cookie), the seat rule (one computer per running attempt until a proctor unlocks it), the
access token and the attempt it opens, the form drawn at the first login, logout, and
:class:`TakerError`, the refusal every taker rule raises.

The clock and the hand-in are ``app.delivery.timing``; saving answers is
``app.delivery.saving``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.forms import build_form
from app.assembly.models import Blueprint
from app.auth import throttle
from app.auth.security import (
    constant_time_equal,
    keyed_digest,
    normalize_participant_token,
    random_token,
)
from app.db import RecordedRefusal, hold
from app.delivery import content
from app.delivery.models import DONE_STATES, Attempt, AttemptItem, AttemptSection, AttemptState
from app.proctoring.models import Incident
from app.sessions.models import Participant, RosterEntry, SessionState, TestSession

LIVE_STATES = (AttemptState.not_started, AttemptState.active, AttemptState.paused)

TOKEN_PURPOSE = "participant-token"  # noqa: S105 - an HMAC purpose label, not a secret
ACCESS_PURPOSE = "attempt-access"


class TakerError(Exception):
    """A refused taker request. ``status`` is the HTTP status the API answers with, ``key`` a
    locale key for the page, ``detail`` an English explanation for API clients."""

    def __init__(self, status: int, key: str, detail: str, retry_after: int = 0) -> None:
        super().__init__(detail)
        self.status, self.key, self.detail, self.retry_after = status, key, detail, retry_after


class LoginRefused(TakerError, RecordedRefusal):
    """A refused login whose failure count and audit row must be kept."""


@dataclass
class LoginResult:
    attempt: Attempt
    session: TestSession
    participant: Participant
    access_token: str


# -- login --------------------------------------------------------------------------------------


@dataclass
class LoginCheck:
    """A taker login's throttle, read in a read-only transaction."""

    nip: str
    counted_as: str  # the client address, or "seat:..." for the seat the attempt is bound to
    retry_after_s: int = 0
    counted: bool = True  # a failure counter of this NIP or address exists (or may)

    @property
    def identifier(self) -> str:
        return f"nip:{self.nip}"


def normalize_nip(nip: str) -> str:
    return "".join(ch for ch in nip if ch.isdigit())[:18]


SEAT_PREFIX = "seat-"
SEAT_RANDOM_BYTES = 12


def new_seat_id() -> str:
    """A lab PC's id, kept by its browser in a long-lived cookie (the login page sets it)."""
    return SEAT_PREFIX + random_token(SEAT_RANDOM_BYTES)


_SEAT_ID_LENGTH = len(new_seat_id())  # the same for every id: 12 random bytes are 16 characters


def is_cookie_seat(workstation: str) -> bool:
    """Made by :func:`new_seat_id`: unguessable. A name an API client chose ("PC-07") could be
    guessed, so it never earns the seat's own throttle counter."""
    return workstation.startswith(SEAT_PREFIX) and len(workstation) >= _SEAT_ID_LENGTH


# The statements every taker's login and every taker request run, built once.
_ENTRIES_OF_NIP = (
    select(RosterEntry, TestSession, Participant)
    .join(TestSession, TestSession.id == RosterEntry.session_id)
    .join(Participant, Participant.id == RosterEntry.participant_id)
    .where(Participant.nip == bindparam("nip"))
    .order_by(TestSession.starts_at.desc()))
_BY_ACCESS = (
    select(Attempt, AttemptSection)
    .outerjoin(AttemptSection, (AttemptSection.attempt_id == Attempt.id)
               & (AttemptSection.section == Attempt.current_section))
    .where(Attempt.access_token_hmac == bindparam("digest")))
_OF_ENTRY = select(Attempt).where(Attempt.roster_entry_id == bindparam("entry"))


def _matches(db: Session, nip: str, token: str, secret: str) -> tuple | None:
    digest = keyed_digest(secret, TOKEN_PURPOSE, normalize_participant_token(token))
    rows = db.execute(_ENTRIES_OF_NIP, {"nip": nip}).all()
    return next((r for r in rows if constant_time_equal(r[0].token_hmac, digest)), None)


def check_login(db: Session, *, nip: str, workstation: str, client_addr: str,
                now: datetime) -> LoginCheck:
    """The throttle of a login, without writing anything (the token is checked by
    :func:`login`, in the transaction that writes the login or counts its failure).

    Failures are counted per NIP and address and per address (app/auth/throttle.py). When
    this NIP's live attempt is bound to the seat cookie this browser presents, the seat is
    counted instead of the address: the taker at their own lab PC gets in with the right
    token whatever others behind the same address did."""
    nip = normalize_nip(nip)
    counted_as = client_addr
    if is_cookie_seat(workstation):
        bound = db.scalar(
            select(Attempt.id)
            .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
            .join(Participant, Participant.id == RosterEntry.participant_id)
            .where(Participant.nip == nip, Attempt.workstation_id == workstation,
                   Attempt.state.in_(LIVE_STATES)).limit(1))
        if bound is not None:
            counted_as = f"seat:{workstation}"
    check = LoginCheck(nip, counted_as)
    check.retry_after_s, check.counted = throttle.look_up(
        db, identifier=check.identifier, client_addr=counted_as, now=now)
    return check


def record_login_failure(db: Session, *, check: LoginCheck, client_addr: str,
                         now: datetime) -> None:
    """The throttle count and audit row of a wrong NIP or token (through the group commit)."""
    throttle.register_failure(db, identifier=check.identifier, client_addr=check.counted_as,
                              now=now)
    audit.record(db, actor=f"addr:{client_addr}", action="taker.login_failed",
                 target=check.identifier, now=now)


def login(db: Session, *, nip: str, token: str, workstation: str, client_addr: str,
          secret: str, now: datetime, check: LoginCheck | None = None,
          admit: Callable[[TestSession, Participant], None] | None = None) -> LoginResult:
    """NIP + token -> the attempt of the participant's open session, bound to this seat.

    ``check`` is the caller's :func:`check_login` when it already ran (the HTTP routes run it
    in a read-only transaction, then this in the group commit); without it the whole login
    runs in this transaction. A wrong NIP or token is counted and audited here and raised as
    :class:`LoginRefused`, whose writes the caller keeps. ``admit`` may refuse
    the login once the credentials matched and before anything of it is written (the Safe
    Exam Browser rule, app/delivery/seb.py)."""
    if check is None:
        check = check_login(db, nip=nip, workstation=workstation, client_addr=client_addr,
                            now=now)
        if check.retry_after_s:
            raise TakerError(429, "taker.error_throttled", "too many failed logins",
                             check.retry_after_s)
    nip = check.nip
    match = _matches(db, nip, token, secret)
    if match is None:
        record_login_failure(db, check=check, client_addr=client_addr, now=now)
        raise LoginRefused(401, "taker.error_credentials", "wrong NIP or token")
    entry, session, participant = match
    if session.state not in (SessionState.open, SessionState.paused):
        raise TakerError(403, "taker.error_session_" + session.state.value,
                         f"session {session.code} is {session.state.value}, not open")
    if admit is not None:
        admit(session, participant)
    attempt = db.scalar(_OF_ENTRY, {"entry": entry.id})
    if attempt is None:
        attempt = Attempt(roster_entry_id=entry.id, session_id=session.id,
                          seed=secrets.randbits(62), state=AttemptState.not_started,
                          workstation_id=workstation, last_seen_at=now)
        db.add(attempt)
        db.flush()
        build_attempt_form(db, attempt, session)
    elif attempt.state == AttemptState.prepared:
        # Drawn when the session was prepared (app/sessions/prepare.py): the taker sits down.
        attempt.state = AttemptState.not_started
    elif attempt.state in LIVE_STATES and attempt.workstation_id not in (None, workstation):
        audit.record(db, actor=f"taker:{nip}", action="taker.login_refused_seat",
                     target=f"attempt:{attempt.id}", now=now,
                     data={"seat": workstation, "held_by": attempt.workstation_id})
        # The proctor console shows this on the participant's row: someone tried to sit down
        # at a second computer (a crashed PC, or someone else with the card).
        db.add(Incident(session_id=session.id, attempt_id=attempt.id, kind="seat_refused",
                        note=f"{workstation} (held by {attempt.workstation_id})"[:2000],
                        created_at=now))
        raise LoginRefused(409, "taker.error_seat",
                         "this attempt is active on another computer; ask the proctor to unlock")
    if check.counted:  # most logins of a morning have no failure to forget
        throttle.clear_success(db, identifier=check.identifier, client_addr=check.counted_as)
    access = random_token(32)
    attempt.access_token_hmac = keyed_digest(secret, ACCESS_PURPOSE, access)
    if attempt.state in LIVE_STATES:
        attempt.workstation_id = workstation
    attempt.last_seen_at = now
    audit.record(db, actor=f"taker:{nip}", action="taker.login", target=f"attempt:{attempt.id}",
                 now=now, data={"seat": workstation, "addr": client_addr})
    return LoginResult(attempt, session, participant, access)


def attempt_for_access_token(db: Session, *, token: str, secret: str) -> Attempt | None:
    """The attempt of an access token, with its current section loaded in the same query and
    held in the session (every taker request needs both; this is the hot path)."""
    if not token:
        return None
    row = db.execute(_BY_ACCESS,
                     {"digest": keyed_digest(secret, ACCESS_PURPOSE, token)}).first()
    if row is None:
        return None
    attempt, section = row
    if section is not None:
        hold(db, section)  # the clock's refresh and the status look it up by its key
    return attempt


def build_attempt_form(db: Session, attempt: Attempt, session: TestSession) -> None:
    """Draw and store the attempt's form from its seed (see app.assembly.forms)."""
    spec = db.get_one(Blueprint, session.blueprint_id).spec
    version_ids = {p["bank_version_id"] for s in spec["sections"] for p in s["picks"]}
    pool = content.pool(db, version_ids)
    entries = build_form(spec, pool, attempt.seed)
    # Plain multi-row inserts: at 08:00 every taker's form (100+ rows) is written at once.
    db.execute(cast(Table, AttemptItem.__table__).insert(), [
        {"attempt_id": attempt.id, "item_id": e.item_id, "position": e.position,
         "section": e.section, "option_order": list(e.option_order)} for e in entries])
    db.execute(cast(Table, AttemptSection.__table__).insert(), [
        {"attempt_id": attempt.id, "section": i} for i in range(len(spec["sections"]))])




def logout(db: Session, *, token: str, secret: str, now: datetime) -> None:
    """End the access token on the server (security review #13: after logout the old cookie or
    bearer token opened the exam again). The seat binding stays, so the taker can log in again
    with NIP + token on the same computer and only there; an unknown token changes nothing."""
    attempt = attempt_for_access_token(db, token=token, secret=secret)
    if attempt is None:
        return
    attempt.access_token_hmac = None
    audit.record(db, actor=f"attempt:{attempt.id}", action="taker.logout",
                 target=f"attempt:{attempt.id}", now=now,
                 data={"seat": attempt.workstation_id})


def unlock_seat(db: Session, *, attempt: Attempt, reason: str, actor: str,
                now: datetime) -> None:
    """Let the attempt continue on another computer (a proctor's decision, audited). The next
    login takes the seat and replaces the access token, so the old computer can no longer
    save; time left is unchanged (the deadlines are in the database)."""
    if not reason.strip():
        raise ValueError("unlocking a seat needs a reason (e.g. 'PC 12 rusak')")
    if attempt.state in DONE_STATES:
        raise ValueError("the attempt is already closed")
    if attempt.state == AttemptState.prepared:
        raise ValueError("the participant has not logged in yet; there is no seat to unlock")
    previous = attempt.workstation_id
    attempt.workstation_id = None
    attempt.access_token_hmac = None  # the old computer is logged out and cannot save
    audit.record(db, actor=actor, action="attempt.unlock", target=f"attempt:{attempt.id}",
                 reason=reason.strip(), now=now, data={"previous_seat": previous})
