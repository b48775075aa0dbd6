"""Durable autosave: each save carries a per-attempt sequence number from the page. The
answer row is replaced only by a higher seq (one INSERT .. ON CONFLICT DO UPDATE .. WHERE seq <
new seq), so a duplicated, retried or reordered save can never regress an answer; every
accepted change is also appended to answer_events. The caller's transaction commits before the
acknowledgement.

Also here: how a taker names options (their place in the taker's own order, ``shown_to_real``
and ``real_to_shown``), the page's "still alive" and its report of failed saves. A save is
refused outside the attempt's time (``app.delivery.timing``), except for one in flight when
the time ran out (the grace period).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from app.auth.security import keyed_digest
from app.bank.models import Item, ItemKind
from app.delivery.attempts import ACCESS_PURPOSE, TakerError, attempt_for_access_token
from app.delivery.content import choice_bounds
from app.delivery.models import (
    DONE_STATES,
    Answer,
    AnswerEvent,
    Attempt,
    AttemptItem,
    AttemptSection,
    AttemptState,
)
from app.delivery.timing import (
    blueprint_spec,
    refresh,
    remaining_seconds,
    require_live,
    score_handed_in,
)
from app.proctoring.models import Incident


def _table(model: type[Any]) -> Table:
    """A mapped class's Core table (typed as a plain FromClause on the class)."""
    return cast(Table, model.__table__)


@dataclass
class SaveResult:
    stored_seq: int
    accepted: bool  # False: an equal or newer save was already stored
    remaining_s: int | None
    state: str
    attempt_id: int | None = None


def _validate_response(kind: ItemKind, option_order: list[int], response: Any,
                       scoring: dict[str, Any] | None = None) -> Any:
    """The answer as stored, or a 422. A multiple-response item's ``max_choices`` is enforced
    here: more options than that is refused, never stored. Its ``min_choices`` is not: while
    answering, a taker ticks one option after the other and each tick is saved, so fewer is a
    state on the way to the answer (the page shows "choose 2", and the summary before hand-in
    counts the item as not yet answered, ``views.ItemView.answered``). Scoring reads whatever
    was stored. ``scoring`` comes with the item row the save already reads: no extra query."""
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
        _, most = choice_bounds(scoring)
        if most is not None and len(response) > most:
            raise TakerError(422, "takerscreen.error_max_choices",
                             f"this item accepts at most {most} chosen options "
                             f"({len(response)} were sent)")
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


def real_to_shown(option_order: Sequence[int], response: Any) -> Any:
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
           AttemptItem.section, AttemptItem.option_order, Item.kind, Item.scoring)
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
                               shown_to_real(row.option_order, response), row.scoring)
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
    row = db.execute(select(AttemptItem.section, AttemptItem.option_order, Item.kind,
                            Item.scoring)
                     .join(Item, Item.id == AttemptItem.item_id)
                     .where(AttemptItem.attempt_id == attempt.id,
                            AttemptItem.item_id == item_id)).first()
    if row is None:
        raise TakerError(404, "taker.error_item", "this item is not in your form")
    section_index, option_order, kind, scoring = row
    if shown:
        response = shown_to_real(option_order, response)
    value = _validate_response(kind, option_order, response, scoring)
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
        score_handed_in(db, attempt, now)
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
    require_live(attempt)
    if section_index == attempt.current_section:
        return
    if section_index > attempt.current_section:
        raise TakerError(409, "taker.error_section_pending", "that section is not open yet")
    if (section.ended_at and section.deadline_at and section.ended_at >= section.deadline_at
            and now <= section.ended_at + grace):
        return  # in flight when the section's time ran out
    spec_sections = blueprint_spec(db, attempt)["sections"]
    if spec_sections[section_index].get("allow_back", True) and not spec_sections[
            section_index].get("time_limit_s"):
        return
    raise TakerError(409, "taker.error_section_closed", "that section is closed")
