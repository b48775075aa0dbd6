"""Preparing a session the day before: every roster entry's attempt and form drawn at once.

At 08:00 every taker logs in within a minute. Drawing a 112-item form and writing its rows
was the largest part of a login (docs/performance.md); none of it depends on the morning, so
it is done when the session is prepared: ``cact session prepare CODE``, the session page's
"Siapkan" button, or opening a session that was not prepared. One attempt per roster entry is
written in the state ``prepared`` (nobody is there yet: everything that counts who came treats
it as no attempt), with its seed, its form and its sections, in bulk inserts. A login then
only checks the token, binds the seat and records the event.

A roster changed after preparation stays prepared: entries added get their forms as they are
added (:func:`draw_forms` from the roster import), an entry removed loses its prepared attempt
with it (app/sessions/roster.py). A login of an entry that somehow has no attempt still draws
its form at the login, as before preparation existed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.forms import build_form
from app.assembly.models import Blueprint
from app.delivery import content
from app.delivery.models import Attempt, AttemptItem, AttemptSection, AttemptState
from app.sessions.models import RosterEntry, SessionState, TestSession

CHUNK_ROWS = 20_000  # form rows per INSERT: bounded memory, few round trips


@dataclass
class Prepared:
    drawn: int  # attempts drawn now
    already: int  # entries that had an attempt (prepared earlier, or logged in)
    items: int  # form rows written now


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def draw_forms(db: Session, *, session: TestSession, entry_ids: list[int]) -> int:
    """Attempts in the state ``prepared`` with their forms for these roster entries (which
    have none). Returns the number of form rows written."""
    if not entry_ids:
        return 0
    spec = db.get_one(Blueprint, session.blueprint_id).spec
    version_ids = {p["bank_version_id"] for s in spec["sections"] for p in s["picks"]}
    pool = content.pool(db, version_ids)
    seeds = [secrets.randbits(62) for _ in entry_ids]
    ids = db.scalars(
        insert(Attempt).returning(Attempt.id, sort_by_parameter_order=True),
        [{"roster_entry_id": entry_id, "session_id": session.id, "seed": seed,
          "state": AttemptState.prepared} for entry_id, seed in zip(entry_ids, seeds,
                                                                     strict=True)]).all()
    sections = len(spec["sections"])

    def item_rows() -> Iterator[dict[str, Any]]:
        for attempt_id, seed in zip(ids, seeds, strict=True):
            for e in build_form(spec, pool, seed):
                yield {"attempt_id": attempt_id, "item_id": e.item_id, "position": e.position,
                       "section": e.section, "option_order": list(e.option_order)}

    written = 0
    for chunk in _chunks(item_rows(), CHUNK_ROWS):
        db.execute(cast(Table, AttemptItem.__table__).insert(), chunk)
        written += len(chunk)
    for chunk in _chunks(({"attempt_id": a, "section": i} for a in ids for i in range(sections)),
                         CHUNK_ROWS):
        db.execute(cast(Table, AttemptSection.__table__).insert(), chunk)
    return written


def unprepared_entries(db: Session, session: TestSession) -> tuple[list[int], int]:
    """(roster entries without an attempt, entries with one)."""
    rows = db.execute(
        select(RosterEntry.id, Attempt.id)
        .outerjoin(Attempt, Attempt.roster_entry_id == RosterEntry.id)
        .where(RosterEntry.session_id == session.id).order_by(RosterEntry.id)).all()
    return [entry for entry, attempt in rows if attempt is None], \
        sum(1 for _, attempt in rows if attempt is not None)


class PrepareRefused(ValueError):
    """A closed session is not prepared again."""


def prepare_session(db: Session, *, session: TestSession, actor: str, now: datetime) -> Prepared:
    """Draw the form of every roster entry that has none; mark the session prepared.
    Running it again draws only what is missing (entries added since)."""
    if session.state == SessionState.closed:
        raise PrepareRefused(f"session {session.code} is closed")
    missing, already = unprepared_entries(db, session)
    items = draw_forms(db, session=session, entry_ids=missing)
    first = session.prepared_at is None
    if first:
        session.prepared_at = now
    db.flush()
    if missing or first:
        audit.record(db, actor=actor, action="session.prepare", target=f"session:{session.code}",
                     now=now, data={"drawn": len(missing), "already": already, "items": items})
    return Prepared(len(missing), already, items)
