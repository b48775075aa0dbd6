"""A test taker's attempt: login and seat, form, server-owned clock, durable autosave, submit.

Time: every deadline is an absolute UTC timestamp in the database (attempt-wide and per
section). Pauses and extra time move those timestamps; the page only displays what is left.
Sections open one after another; a section whose time is up closes and the next one opens at
that moment, whether or not a browser is there (``refresh``, also run by the sweeper).

Saves: each carries a per-attempt sequence number from the page. The answer row is replaced
only by a higher seq (one INSERT .. ON CONFLICT DO UPDATE .. WHERE seq < new seq), so a
duplicated, retried or reordered save can never regress an answer; every accepted change is
also appended to answer_events. The caller's transaction commits before the acknowledgement.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

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
from app.bank.models import Item, ItemKind
from app.db import RecordedRefusal
from app.delivery import content
from app.delivery.models import (
    Answer,
    AnswerEvent,
    Attempt,
    AttemptItem,
    AttemptSection,
    AttemptState,
)
from app.proctoring.models import Incident
from app.sessions.models import Participant, RosterEntry, SessionState, TestSession

LIVE_STATES = (AttemptState.not_started, AttemptState.active, AttemptState.paused)
DONE_STATES = (AttemptState.submitted, AttemptState.expired)
def _table(model: type[Any]) -> Table:
    """A mapped class's Core table (typed as a plain FromClause on the class)."""
    return cast(Table, model.__table__)


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
    """A taker login read in a read-only transaction: the throttle and the token's match."""

    nip: str
    counted_as: str  # the client address, or "seat:..." for the seat the attempt is bound to
    retry_after_s: int = 0
    matched: bool = False

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


def _matches(db: Session, nip: str, token: str, secret: str) -> tuple | None:
    digest = keyed_digest(secret, TOKEN_PURPOSE, normalize_participant_token(token))
    rows = db.execute(
        select(RosterEntry, TestSession, Participant)
        .join(TestSession, TestSession.id == RosterEntry.session_id)
        .join(Participant, Participant.id == RosterEntry.participant_id)
        .where(Participant.nip == nip)
        .order_by(TestSession.starts_at.desc())).all()
    return next((r for r in rows if constant_time_equal(r[0].token_hmac, digest)), None)


def check_login(db: Session, *, nip: str, token: str, workstation: str, client_addr: str,
                secret: str, now: datetime) -> LoginCheck:
    """The throttle and the token check of a login, without writing anything.

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
    check.retry_after_s = throttle.wait_seconds(db, identifier=check.identifier,
                                                client_addr=counted_as, now=now)
    if not check.retry_after_s:
        check.matched = _matches(db, nip, token, secret) is not None
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
    in a read-only transaction and write a failure through the group commit); without it the
    whole login, failure bookkeeping included, runs in this transaction. ``admit`` may refuse
    the login once the credentials matched and before anything of it is written (the Safe
    Exam Browser rule, app/delivery/seb.py)."""
    if check is None:
        check = check_login(db, nip=nip, token=token, workstation=workstation,
                            client_addr=client_addr, secret=secret, now=now)
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
    attempt = db.scalar(select(Attempt).where(Attempt.roster_entry_id == entry.id))
    if attempt is None:
        attempt = Attempt(roster_entry_id=entry.id, session_id=session.id,
                          seed=secrets.randbits(62), state=AttemptState.not_started,
                          workstation_id=workstation, last_seen_at=now)
        db.add(attempt)
        db.flush()
        build_attempt_form(db, attempt, session)
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
    """The attempt of an access token, with its current section loaded in the same query
    (every taker request needs both; this is the hot path)."""
    if not token:
        return None
    row = db.execute(
        select(Attempt, AttemptSection)
        .outerjoin(AttemptSection, (AttemptSection.attempt_id == Attempt.id)
                   & (AttemptSection.section == Attempt.current_section))
        .where(Attempt.access_token_hmac == keyed_digest(secret, ACCESS_PURPOSE, token))
    ).first()
    return row[0] if row else None


def build_attempt_form(db: Session, attempt: Attempt, session: TestSession) -> None:
    """Draw and store the attempt's form from its seed (see app.assembly.forms)."""
    spec = db.get_one(Blueprint, session.blueprint_id).spec
    version_ids = {p["bank_version_id"] for s in spec["sections"] for p in s["picks"]}
    pool = content.pool(db, version_ids)
    entries = build_form(spec, pool, attempt.seed)
    # Plain multi-row inserts: at 08:00 every taker's form (100+ rows) is written at once.
    db.execute(_table(AttemptItem).insert(), [
        {"attempt_id": attempt.id, "item_id": e.item_id, "position": e.position,
         "section": e.section, "option_order": list(e.option_order)} for e in entries])
    db.execute(_table(AttemptSection).insert(), [
        {"attempt_id": attempt.id, "section": i} for i in range(len(spec["sections"]))])


# -- the clock ----------------------------------------------------------------------------------


def _sections(db: Session, attempt: Attempt) -> list[AttemptSection]:
    return list(db.scalars(select(AttemptSection).where(AttemptSection.attempt_id == attempt.id)
                           .order_by(AttemptSection.section)))


def _spec(db: Session, attempt: Attempt) -> dict[str, Any]:
    session = db.get_one(TestSession, attempt.session_id)
    blueprint = db.get_one(Blueprint, session.blueprint_id)
    return {"blueprint": blueprint, "sections": blueprint.spec["sections"]}


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


def start(db: Session, *, attempt: Attempt, now: datetime) -> None:
    """Leave the instructions: the first section's clock (and the whole test's) starts now."""
    if attempt.state != AttemptState.not_started:
        return
    if db.scalar(select(TestSession.state).where(TestSession.id == attempt.session_id)
                 ) == SessionState.paused:
        raise TakerError(409, "taker.error_session_paused", "the session is paused")
    spec = _spec(db, attempt)
    attempt.state = AttemptState.active
    attempt.started_at = now
    attempt.current_section = 0
    if spec["blueprint"].time_limit_s:
        attempt.deadline_at = now + timedelta(seconds=spec["blueprint"].time_limit_s
                                              + attempt.extra_time_s)
    sections = _sections(db, attempt)
    _open_section(sections[0], spec["sections"][0].get("time_limit_s"), now)
    if sections[0].deadline_at and attempt.extra_time_s:
        sections[0].deadline_at += timedelta(seconds=attempt.extra_time_s)
    db.flush()


def refresh(db: Session, *, attempt: Attempt, now: datetime) -> None:
    """Apply what the clock says: close sections and the attempt whose time is up."""
    if attempt.state != AttemptState.active:
        return
    current = db.get(AttemptSection, (attempt.id, attempt.current_section))
    if not any(d and now >= d for d in (attempt.deadline_at, current.deadline_at if current
                                         else None)):
        return  # the common case: nothing is due, no further queries
    spec = _spec(db, attempt)
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
    _require_live(attempt)
    sections = _sections(db, attempt)
    if attempt.current_section + 1 >= len(sections):
        raise TakerError(409, "taker.error_last_section", "this is the last section")
    _advance(attempt, sections, _spec(db, attempt)["sections"], at=now)
    db.flush()


def _require_live(attempt: Attempt) -> None:
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
            _score(db, attempt, now)
        return
    if attempt.state == AttemptState.not_started:
        # The rule lives here, not in a route: the API once handed in an attempt whose clock
        # had never started (a proctor's force_submit and a session's close handle it apart).
        raise TakerError(409, "taker.error_not_started",
                         "the attempt has not started: fetch the form (GET /attempt) first")
    sections = _sections(db, attempt)
    _finish(attempt, sections[attempt.current_section], at=now,
            state=AttemptState.submitted, reason=reason)
    audit.record(db, actor=actor, action="attempt.submit", target=f"attempt:{attempt.id}",
                 now=now, data={"reason": reason})
    if score:
        _score(db, attempt, now)


def _score(db: Session, attempt: Attempt, now: datetime) -> None:
    """Score a handed-in attempt; never fails the hand-in (see scoring.service)."""
    from app.scoring.service import score_attempt_safely  # scoring reads delivery's tables

    score_attempt_safely(db, attempt=attempt, now=now)


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
    previous = attempt.workstation_id
    attempt.workstation_id = None
    attempt.access_token_hmac = None  # the old computer is logged out and cannot save
    audit.record(db, actor=actor, action="attempt.unlock", target=f"attempt:{attempt.id}",
                 reason=reason.strip(), now=now, data={"previous_seat": previous})


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


# -- answers ------------------------------------------------------------------------------------


@dataclass
class SaveResult:
    stored_seq: int
    accepted: bool  # False: an equal or newer save was already stored
    remaining_s: int | None
    state: str
    attempt_id: int | None = None


def _validate_response(kind: ItemKind, option_order: list[int], response: Any) -> Any:
    if response is None:
        return None
    allowed = set(option_order)
    if kind == ItemKind.multiple:
        if not isinstance(response, list) or len(set(response)) != len(response) or not all(
                isinstance(r, int) and not isinstance(r, bool) and r in allowed
                for r in response):
            raise TakerError(422, "taker.error_response",
                             "a multiple-response answer is a list of distinct option ids of "
                             "this item")
        return sorted(response, key=option_order.index) or None
    if isinstance(response, bool) or not isinstance(response, int) or response not in allowed:
        raise TakerError(422, "taker.error_response",
                         "the answer must be one option id of this item, or null")
    return response


def shown_to_real(option_order: list[int], response: Any) -> Any:
    """A taker names an option by its place in their own form's order (1..n), never by its
    id: ids follow the author's order, so sending them let anyone holding two forms undo the
    per-taker shuffle (security review #13). ``option_order`` (the real ids as shown) is the
    mapping and stays on the server; answers are stored with the real ids. Anything that is
    not a place of this item becomes 0, which no option has, so validation refuses it."""
    def real(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return value  # left for _validate_response to refuse with its usual message
        return option_order[value - 1] if 0 < value <= len(option_order) else 0
    if isinstance(response, list):
        return [real(value) for value in response]
    return None if response is None else real(response)


def real_to_shown(option_order: list[int], response: Any) -> Any:
    """A stored answer (real option ids) as the taker's page and API name it (places 1..n)."""
    if response is None:
        return None
    place = {option: n for n, option in enumerate(option_order, 1)}
    if isinstance(response, list):
        return [place[r] for r in response if r in place]
    return place.get(response)


def _upsert(db: Session):
    dialect = db.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert


# -- the hot path: prepared once, bound per save ----------------------------------------------

_BY_TOKEN = aliased(Attempt, name="by_token")
_SAVE_CONTEXT = (
    select(Attempt.id, Attempt.state, Attempt.current_section, Attempt.deadline_at,
           Attempt.paused_at, AttemptSection.deadline_at.label("section_deadline"),
           AttemptItem.section, AttemptItem.option_order, Item.kind)
    .select_from(Attempt)
    .join(AttemptSection, (AttemptSection.attempt_id == Attempt.id)
          & (AttemptSection.section == Attempt.current_section))
    .join(AttemptItem, (AttemptItem.attempt_id == Attempt.id)
          & (AttemptItem.item_id == bindparam("item_id")))
    .join(Item, Item.id == AttemptItem.item_id)
    # The attempt by its token first, as a scalar subquery: written as a plain join condition,
    # SQLite (without statistics) starts from attempt_items by item_id instead, which at 2,000
    # takers reads every form that holds the item (4.7 ms per save instead of 0.01 ms).
    .where(Attempt.id == select(_BY_TOKEN.id).where(
        _BY_TOKEN.access_token_hmac == bindparam("token_hmac")).scalar_subquery())
)
_EVENT = _table(AnswerEvent).insert().values(
    attempt_id=bindparam("a"), item_id=bindparam("i"), response=bindparam("r"),
    seq=bindparam("s"), flagged=bindparam("f"), server_time=bindparam("t"),
    workstation_id=bindparam("w"))
_TOUCH = (update(_table(Attempt)).where(_table(Attempt).c.id == bindparam("a"))
          .values(last_seq=case((_table(Attempt).c.last_seq < bindparam("s"), bindparam("s")),
                                else_=_table(Attempt).c.last_seq),
                  last_seen_at=bindparam("t")))
_STORED_SEQ = select(_table(Answer).c.seq).where(_table(Answer).c.attempt_id == bindparam("a"),
                                                   _table(Answer).c.item_id == bindparam("i"))
_UPSERTS: dict[str, Any] = {}


def _upsert_statement(dialect: str) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE .. WHERE stored seq < new seq RETURNING seq, built once
    per dialect so every save reuses the compiled statement."""
    if dialect not in _UPSERTS:
        table = _table(Answer)
        insert = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(
            attempt_id=bindparam("a"), item_id=bindparam("i"), response=bindparam("r"),
            seq=bindparam("s"), flagged=bindparam("f"), server_time=bindparam("t"))
        _UPSERTS[dialect] = insert.on_conflict_do_update(
            index_elements=[table.c.attempt_id, table.c.item_id],
            set_={"response": insert.excluded.response, "seq": insert.excluded.seq,
                  "flagged": insert.excluded.flagged,
                  "server_time": insert.excluded.server_time},
            where=table.c.seq < insert.excluded.seq,
        ).returning(table.c.seq)
    return _UPSERTS[dialect]


def save_with_token(db: Session, *, token: str, secret: str, item_id: int, response: Any,
                    seq: int, flagged: bool, workstation: str | None, grace_s: int,
                    now: datetime) -> SaveResult:
    """The autosave request: one joined read, then the upsert, the event and the attempt's
    last seq and last-seen time, all on prepared statements. Anything unusual (a deadline
    due, another section, an unknown token or item) takes the general path below, which
    gives the precise answer. ``response`` names options as the taker saw them (places
    1..n, see ``shown_to_real``)."""
    _check_seq(seq)
    conn = db.connection()
    row = conn.execute(_SAVE_CONTEXT, {"item_id": item_id, "token_hmac": keyed_digest(
        secret, ACCESS_PURPOSE, token)}).first() if token else None
    due = row is not None and any(d and now >= d for d in (row.deadline_at,
                                                             row.section_deadline))
    if (row is None or due or row.state != AttemptState.active
            or row.section != row.current_section):
        attempt = attempt_for_access_token(db, token=token, secret=secret)
        if attempt is None:
            raise TakerError(401, "taker.error_login_again",
                             "missing or expired access token; log in again")
        return save_answer(db, attempt=attempt, item_id=item_id, response=response, seq=seq,
                           flagged=flagged, workstation=workstation, grace_s=grace_s, now=now,
                           shown=True)
    value = _validate_response(ItemKind(row.kind), row.option_order,
                               shown_to_real(row.option_order, response))
    params = {"a": row.id, "i": item_id, "r": value, "s": seq, "f": bool(flagged), "t": now,
              "w": workstation}
    stored = conn.execute(_upsert_statement(conn.dialect.name), params).scalar()
    accepted = stored is not None
    if stored is not None:
        conn.execute(_EVENT, params)
    else:
        stored = conn.execute(_STORED_SEQ, params).scalar_one()
    conn.execute(_TOUCH, params)
    deadline = min([d for d in (row.deadline_at, row.section_deadline) if d], default=None)
    remaining = None if deadline is None else max(
        0, int((deadline - (row.paused_at or now)).total_seconds() + 0.999))
    return SaveResult(stored, accepted, remaining, AttemptState.active.value, row.id)


def record_save_failures(db: Session, *, attempt_id: int, failures: int, now: datetime) -> None:
    """The page reports that its saves failed several times before this one got through
    (network or server trouble at that PC): an event for the proctor console's row."""
    session_id = db.scalar(select(Attempt.session_id).where(Attempt.id == attempt_id))
    db.execute(_table(Incident).insert().values(
        session_id=session_id, attempt_id=attempt_id, kind="save_failures", created_at=now,
        note=f"{failures} failed save tries before a save got through"))


def touch(db: Session, *, attempt_id: int, now: datetime) -> None:
    """The page is alive (for the proctor console's "last seen")."""
    db.execute(update(Attempt).where(Attempt.id == attempt_id, (Attempt.last_seen_at < now)
                                     | Attempt.last_seen_at.is_(None))
               .values(last_seen_at=now).execution_options(synchronize_session=False))


def _check_seq(seq: Any) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq < 2**62:
        raise TakerError(422, "taker.error_seq", "seq must be a positive integer")


def save_answer(db: Session, *, attempt: Attempt, item_id: int, response: Any, seq: int,
                flagged: bool, workstation: str | None, grace_s: int, now: datetime,
                shown: bool = False) -> SaveResult:
    """Store an answer if ``seq`` is newer than the stored one (see module docstring).
    ``response`` holds real option ids, or with ``shown`` the places the taker saw
    (``shown_to_real``), as every taker request sends them."""
    _check_seq(seq)
    row = db.execute(select(AttemptItem.section, AttemptItem.option_order, Item.kind)
                     .join(Item, Item.id == AttemptItem.item_id)
                     .where(AttemptItem.attempt_id == attempt.id,
                            AttemptItem.item_id == item_id)).first()
    if row is None:
        raise TakerError(404, "taker.error_item", "this item is not in your form")
    section_index, option_order, kind = row
    if shown:
        response = shown_to_real(option_order, response)
    value = _validate_response(kind, option_order, response)
    refresh(db, attempt=attempt, now=now)
    _require_save_window(db, attempt, section_index, grace_s, now)
    insert = _upsert(db)
    statement = insert(Answer).values(attempt_id=attempt.id, item_id=item_id, response=value,
                                      seq=seq, flagged=bool(flagged), server_time=now)
    statement = statement.on_conflict_do_update(
        index_elements=[Answer.attempt_id, Answer.item_id],
        set_={"response": statement.excluded.response, "seq": statement.excluded.seq,
              "flagged": statement.excluded.flagged,
              "server_time": statement.excluded.server_time},
        where=Answer.seq < statement.excluded.seq,
    ).returning(Answer.seq)
    stored = db.execute(statement).scalar()
    accepted = stored is not None
    if stored is not None:
        db.execute(_table(AnswerEvent).insert().values(
            attempt_id=attempt.id, item_id=item_id, response=value, seq=seq,
            flagged=bool(flagged), server_time=now, workstation_id=workstation))
    else:
        stored = db.execute(select(Answer.seq).where(
            Answer.attempt_id == attempt.id, Answer.item_id == item_id)).scalar_one()
    # One statement for both, and none from the ORM's flush: the proctor console reads these.
    db.execute(update(Attempt).where(Attempt.id == attempt.id).values(
        last_seq=case((Attempt.last_seq < seq, seq), else_=Attempt.last_seq),
        last_seen_at=now).execution_options(synchronize_session=False))
    if attempt.state in DONE_STATES:  # a save in flight at the deadline (grace): rescore
        _score(db, attempt, now)
    section = db.get(AttemptSection, (attempt.id, attempt.current_section))
    return SaveResult(stored, accepted, remaining_seconds(attempt, section, now),
                      attempt.state.value, attempt.id)


def _require_save_window(db: Session, attempt: Attempt, section_index: int, grace_s: int,
                         now: datetime) -> None:
    grace = timedelta(seconds=grace_s)
    section = db.get_one(AttemptSection, (attempt.id, section_index))
    if attempt.state == AttemptState.expired:
        # A save that was in flight when time ran out still counts, briefly.
        if (attempt.submitted_at and now <= attempt.submitted_at + grace
                and section_index == attempt.current_section):
            return
        raise TakerError(409, "taker.error_time_up", "time is up; the attempt was closed")
    _require_live(attempt)
    if section_index == attempt.current_section:
        return
    if section_index > attempt.current_section:
        raise TakerError(409, "taker.error_section_pending", "that section is not open yet")
    if (section.ended_at and section.deadline_at and section.ended_at >= section.deadline_at
            and now <= section.ended_at + grace):
        return  # in flight when the section's time ran out
    spec_sections = _spec(db, attempt)["sections"]
    if spec_sections[section_index].get("allow_back", True) and not spec_sections[
            section_index].get("time_limit_s"):
        return
    raise TakerError(409, "taker.error_section_closed", "that section is closed")
