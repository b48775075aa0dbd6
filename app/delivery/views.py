"""What a test taker may see of their attempt: the form without keys, weights or parameters,
their stored answers, and the time the server says is left.

Also what the page's submit and next-section dialogs count (:meth:`AttemptView.summary`): the
same answers and flags the hand-in stores, over every section, so the numbers a taker reads
before handing in are the server's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.assembly.models import Blueprint
from app.bank.models import Item
from app.delivery import content
from app.delivery.models import Answer, Attempt, AttemptItem, AttemptSection
from app.delivery.saving import choice_bounds, real_to_shown
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
    # maxChoices; see ``choice_bounds``); None when the item sets none.
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


def attempt_view(db: Session, *, attempt: Attempt, now: datetime) -> AttemptView:
    """The whole attempt for the page and the API (after applying the clock)."""
    refresh(db, attempt=attempt, now=now)
    session = db.get_one(TestSession, attempt.session_id)
    spec_sections = db.get_one(Blueprint, session.blueprint_id).spec["sections"]
    person = db.execute(select(Participant).join(
        RosterEntry, RosterEntry.participant_id == Participant.id)
        .where(RosterEntry.id == attempt.roster_entry_id)).scalar_one()
    sections = {s.section: s for s in db.scalars(
        select(AttemptSection).where(AttemptSection.attempt_id == attempt.id))}
    current = sections.get(attempt.current_section)
    view = AttemptView(
        attempt_id=attempt.id, state=attempt.state.value, session_code=session.code,
        session_name=session.name, participant_name=person.name, nip=person.nip,
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
    # Plain rows, not ORM objects: 112 per form, read on every page of every taker.
    entries = db.execute(select(AttemptItem.item_id, AttemptItem.position, AttemptItem.section,
                                AttemptItem.option_order)
                         .where(AttemptItem.attempt_id == attempt.id)
                         .order_by(AttemptItem.position)).all()
    visible = {e.item_id for e in entries if view.sections[e.section].state != "pending"}
    items, options = content.contents(db, (e.item_id for e in entries))
    multiple = [i for i, c in items.items() if c.kind == "multiple"]
    bounds = {item_id: choice_bounds(scoring) for item_id, scoring in db.execute(
        select(Item.id, Item.scoring).where(Item.id.in_(multiple)))} if multiple else {}
    answers = {a.item_id: a for a in db.execute(
        select(Answer.item_id, Answer.response, Answer.seq, Answer.flagged)
        .where(Answer.attempt_id == attempt.id))}
    for entry in entries:
        item = items[entry.item_id]
        shown = entry.item_id in visible
        answer = answers.get(entry.item_id)
        view.items.append(ItemView(
            item_id=entry.item_id, position=entry.position, section=entry.section,
            kind=item.kind, bank_version_id=item.bank_version_id if shown else 0,
            stem=item.stem if shown else None,
            passage=item.passage if shown and item.passage else None,
            passage_title=item.passage_title if shown and item.passage else None,
            # Real option ids follow the author's order: the taker sees places instead
            # (saving.shown_to_real turns them back into ids when an answer is saved).
            options=[OptionView(n, options[entry.item_id][o])
                     for n, o in enumerate(entry.option_order, 1)] if shown else [],
            response=real_to_shown(entry.option_order, answer.response) if answer else None,
            seq=answer.seq if answer else 0,
            flagged=answer.flagged if answer else False,
            min_choices=bounds.get(entry.item_id, (None, None))[0],
            max_choices=bounds.get(entry.item_id, (None, None))[1]))
    return view
