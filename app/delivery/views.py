"""What a test taker may see of their attempt: the form without keys, weights or parameters,
their stored answers, and the time the server says is left.

Also what the page's submit and next-section dialogs count (:meth:`AttemptView.summary`): the
same answers and flags the hand-in stores, over every section, so the numbers a taker reads
before handing in are the server's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.orm import Session

from app.delivery import content
from app.delivery.models import Answer, Attempt, AttemptItem, AttemptSection
from app.delivery.saving import real_to_shown
from app.delivery.schemas import AttemptRead, ItemRead, OptionRead, SectionRead
from app.delivery.timing import refresh, remaining_seconds
from app.sessions.models import Participant, RosterEntry, TestSession


@dataclass
class OptionView:
    id: int  # the option's place in this attempt's order (1..n), never its real id
    content: str


@dataclass
class ItemView:
    item_id: int
    position: int
    section: int
    kind: str
    bank_version_id: int
    stem: str | None  # None while the section is not open yet
    options: list[OptionView]
    passage: str | None = None  # HTML of the text it is asked about (None: none, or not open)
    passage_title: str | None = None
    response: Any = None
    seq: int = 0
    flagged: bool = False
    # A multiple-response item's bounds on how many options are chosen (QTI minChoices and
    # maxChoices; see ``content.choice_bounds``); None when the item sets none.
    min_choices: int | None = None
    max_choices: int | None = None

    @property
    def answered(self) -> bool:
        """Answered: an option chosen, and for a multiple-response item with a minimum, at
        least that many (fewer is kept as the taker's work in progress, but it is not yet an
        answer, so the summary before hand-in lists it as unanswered)."""
        if self.response in (None, []):
            return False
        if self.min_choices and isinstance(self.response, list):
            return len(self.response) >= self.min_choices
        return True


@dataclass
class SectionView:
    index: int
    title: str
    instructions: str
    time_limit_s: int | None
    allow_back: bool
    state: str  # "open", "closed" or "pending"
    remaining_s: int | None


@dataclass
class AttemptView:
    attempt_id: int
    state: str
    session_code: str
    session_name: str
    participant_name: str
    nip: str
    current_section: int
    remaining_s: int | None
    server_time: datetime
    last_seq: int
    sections: list[SectionView] = field(default_factory=list)
    items: list[ItemView] = field(default_factory=list)
    test_remaining_s: int | None = None  # the whole test's time left, when it has a limit

    @property
    def counts(self) -> dict[str, int]:
        return {"total": len(self.items),
                "answered": sum(1 for i in self.items if i.answered),
                "flagged": sum(1 for i in self.items if i.flagged)}

    def summary(self, section: int | None = None) -> dict[str, list[int]]:
        """The positions still unanswered and flagged: of the whole test (before hand-in,
        where a closed section's answers count as much as the open one's) or of one section
        (before leaving it)."""
        items = [i for i in self.items if section is None or i.section == section]
        return {"unanswered": [i.position for i in items if not i.answered],
                "flagged": [i.position for i in items if i.flagged]}


def _fields(model: type[BaseModel], **nested: Any) -> dict[str, Any]:
    return {name: nested.get(name, True) for name in model.model_fields}


# The form is the largest taker response (112 items with stems) and is sent to every taker at
# 08:00. Validating the view into AttemptRead and dumping that to JSON cost ~12 % of the
# server's Python time during the start (py-spy); pydantic-core writes the same JSON straight
# from the view's dataclasses, keeping only AttemptRead's fields.
_ATTEMPT_FIELDS = _fields(
    AttemptRead,
    sections={"__all__": _fields(SectionRead)},
    items={"__all__": _fields(ItemRead, options={"__all__": _fields(OptionRead)})})
_VIEW_JSON: TypeAdapter[Any] | None = None


def attempt_json(view: AttemptView) -> bytes:
    """``view`` (an AttemptView) as the JSON of AttemptRead."""
    global _VIEW_JSON
    if _VIEW_JSON is None:
        _VIEW_JSON = TypeAdapter(AttemptView)
    return _VIEW_JSON.dump_json(view, include=_ATTEMPT_FIELDS)


def section_state(attempt: Attempt, index: int, spec: dict[str, Any]) -> str:
    if attempt.state.value in ("submitted", "expired"):
        return "closed"
    if index == attempt.current_section:
        return "open"
    if index > attempt.current_section:
        return "pending"
    if spec.get("allow_back", True) and not spec.get("time_limit_s"):
        return "open"
    return "closed"


# The form's statements, built once: every taker asks for the form at 08:00 and every page
# of the exam reads it.
_SECTIONS = select(AttemptSection).where(AttemptSection.attempt_id == bindparam("attempt"))
_NAMES = (select(TestSession.code, TestSession.name, TestSession.blueprint_id,
                 Participant.name.label("person"), Participant.nip)
          .select_from(RosterEntry)
          .join(TestSession, TestSession.id == RosterEntry.session_id)
          .join(Participant, Participant.id == RosterEntry.participant_id)
          .where(RosterEntry.id == bindparam("entry")))
_ENTRIES = (select(AttemptItem.item_id, AttemptItem.position, AttemptItem.section,
                   cast(AttemptItem.option_order, Text))
            .where(AttemptItem.attempt_id == bindparam("attempt"))
            .order_by(AttemptItem.position))
_ANSWERS = (select(Answer.item_id, Answer.response, Answer.seq, Answer.flagged)
            .where(Answer.attempt_id == bindparam("attempt")))


def _head(db: Session, attempt: Attempt, now: datetime) -> AttemptView:
    """The attempt without its items (after applying the clock)."""
    refresh(db, attempt=attempt, now=now)
    # Plain columns: the session's and the person's names are all the page shows of them.
    names = db.execute(_NAMES, {"entry": attempt.roster_entry_id}).one()
    spec_sections = content.blueprint_rules(db, names.blueprint_id).sections
    sections = {s.section: s for s in db.scalars(_SECTIONS, {"attempt": attempt.id})}
    current = sections.get(attempt.current_section)
    view = AttemptView(
        attempt_id=attempt.id, state=attempt.state.value, session_code=names.code,
        session_name=names.name, participant_name=names.person, nip=names.nip,
        current_section=attempt.current_section,
        remaining_s=remaining_seconds(attempt, current, now), server_time=now,
        last_seq=attempt.last_seq,
        test_remaining_s=remaining_seconds(attempt, None, now) if attempt.deadline_at else None)
    for index, spec in enumerate(spec_sections):
        state = section_state(attempt, index, spec)
        row = sections.get(index)
        view.sections.append(SectionView(
            index=index, title=spec.get("title", ""), instructions=spec.get("instructions", ""),
            time_limit_s=spec.get("time_limit_s"), allow_back=spec.get("allow_back", True),
            state=state,
            remaining_s=remaining_seconds(attempt, row, now) if state == "open" else None))
    return view


@dataclass
class _Form:
    """An attempt's form as stored (plain rows, in taker order), the frozen content of its
    items (app/delivery/content.py, read once per process) and the taker's answers."""

    entries: list[_Entry]  # in taker order
    items: dict[int, content.ItemContent]
    options: dict[int, dict[int, str]]
    answers: dict[int, Any]  # item id -> (item_id, response, seq, flagged)


class _Entry(NamedTuple):
    item_id: int
    position: int
    section: int
    option_order: tuple[int, ...]


# An option order as stored (JSON text) -> its ids. A bank's items have a few hundred orders
# between them, which every form repeats: decoding 112 of them per request was a tenth of
# building the form.
_ORDERS: dict[str, tuple[int, ...]] = {}
MAX_ORDERS = 200_000


def _order(text: str) -> tuple[int, ...]:
    order = _ORDERS.get(text)
    if order is None:
        order = tuple(json.loads(text))
        if len(_ORDERS) >= MAX_ORDERS:
            _ORDERS.clear()
        _ORDERS[text] = order
    return order


def _form(db: Session, attempt: Attempt) -> _Form:
    # Plain rows, not ORM objects: 112 per form, read on every page of every taker.
    entries = [_Entry(item_id, position, section, _order(order)) for
               item_id, position, section, order in db.execute(
                   _ENTRIES, {"attempt": attempt.id})]
    items, options = content.contents(db, (e.item_id for e in entries))
    answers = {a.item_id: a for a in db.execute(_ANSWERS, {"attempt": attempt.id})}
    return _Form(entries, items, options, answers)


def attempt_view(db: Session, *, attempt: Attempt, now: datetime) -> AttemptView:
    """The whole attempt for the page (after applying the clock)."""
    view = _head(db, attempt, now)
    form = _form(db, attempt)
    for entry in form.entries:
        item = form.items[entry.item_id]
        shown = view.sections[entry.section].state != "pending"
        answer = form.answers.get(entry.item_id)
        view.items.append(ItemView(
            item_id=entry.item_id, position=entry.position, section=entry.section,
            kind=item.kind, bank_version_id=item.bank_version_id if shown else 0,
            stem=item.stem if shown else None,
            passage=item.passage if shown and item.passage else None,
            passage_title=item.passage_title if shown and item.passage else None,
            # Real option ids follow the author's order: the taker sees places instead
            # (saving.shown_to_real turns them back into ids when an answer is saved).
            options=[OptionView(n, form.options[entry.item_id][o])
                     for n, o in enumerate(entry.option_order, 1)] if shown else [],
            response=real_to_shown(entry.option_order, answer.response) if answer else None,
            seq=answer.seq if answer else 0,
            flagged=answer.flagged if answer else False,
            min_choices=item.min_choices, max_choices=item.max_choices))
    return view


_NO_ITEMS = b'"items":[]'


def attempt_bytes(db: Session, *, attempt: Attempt, now: datetime) -> bytes:
    """The attempt as the API's JSON (AttemptRead), the same as ``attempt_json(attempt_view(
    ...))`` but joined from each item's JSON parts, encoded once per process
    (``content.encoded``), with this taker's places, answers and flags put in between: the
    form is the largest response and every taker asks for it at 08:00."""
    view = _head(db, attempt, now)
    form = _form(db, attempt)
    encoded = content.encoded(db, form.items, form.options)
    pending = {s.index for s in view.sections if s.state == "pending"}
    parts = []
    for entry in form.entries:
        item = encoded[entry.item_id]
        answer = form.answers.get(entry.item_id)
        if entry.section in pending:
            fixed, options = item.hidden, b""
        else:
            fixed = item.shown
            options = b",".join([b'{"id":%d,"content":%b}' % (n, item.options[o])
                                 for n, o in enumerate(entry.option_order, 1)])
        if answer is None:
            mine = b'"response":null,"seq":0,"flagged":false'
        else:
            response = real_to_shown(entry.option_order, answer.response)
            mine = b'"response":%b,"seq":%d,"flagged":%b' % (
                json.dumps(response).encode(), answer.seq,
                b"true" if answer.flagged else b"false")
        parts.append(b'{"item_id":%d,"position":%d,"section":%d,%b,"options":[%b],%b}' % (
            entry.item_id, entry.position, entry.section, fixed, options, mine))
    head = attempt_json(view)
    at = head.rindex(_NO_ITEMS)  # a JSON string cannot hold it unescaped
    return b"".join((head[:at], b'"items":[', b",".join(parts), b"]", head[at + len(_NO_ITEMS):]))
