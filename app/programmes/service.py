"""Assessment programmes: create one, attach sessions to it, list them. Every change is audited.

A session belongs to at most one programme. Attaching a session sets its scoring purpose to
the programme's (``app.sessions.scoring_settings``, audited there too): the purpose selects the
category table, and one programme's categories must mean one thing. Results already stored are
not rescored silently; the change says how many need ``cact results rescore``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.i18n import translate
from app.programmes.models import Programme, Purpose
from app.sessions.models import RosterEntry, TestSession
from app.sessions.scoring_settings import set_scoring_settings

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
NAME_MAX = 200
AGENCY_MAX = 200


class ProgrammeError(ValueError):
    """A refused programme change. ``key`` names ``programmes.error_<key>`` in the locale
    files; ``str(error)`` is the English text."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key, self.params = key, params
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        return translate(lang, f"programmes.error_{self.key}", **self.params)


def programme_by_code(db: Session, code: str) -> Programme | None:
    return db.scalar(select(Programme).where(Programme.code == code.strip().upper()))


def purpose_of(value: str) -> Purpose:
    """``mapping`` or ``position`` (``placement`` is accepted for the scoring word)."""
    word = value.strip().lower()
    word = "position" if word == "placement" else word
    if word not in Purpose.__members__:
        raise ProgrammeError("purpose", value=value.strip()[:40])
    return Purpose(word)


def create_programme(db: Session, *, code: str, name: str, purpose: str, agency: str = "",
                     starts_on: date | None = None, ends_on: date | None = None, actor: str,
                     now: datetime) -> Programme:
    code, name, agency = code.strip().upper(), name.strip(), agency.strip()
    if not CODE_RE.match(code):
        raise ProgrammeError("code_invalid", code=code[:40])
    if not name:
        raise ProgrammeError("name_missing")
    if len(name) > NAME_MAX or len(agency) > AGENCY_MAX:
        raise ProgrammeError("too_long", limit=NAME_MAX)
    if starts_on and ends_on and ends_on < starts_on:
        raise ProgrammeError("dates")
    if programme_by_code(db, code) is not None:
        raise ProgrammeError("code_taken", code=code)
    programme = Programme(code=code, name=name, agency=agency, purpose=purpose_of(purpose),
                          starts_on=starts_on, ends_on=ends_on, created_at=now)
    db.add(programme)
    db.flush()
    audit.record(db, actor=actor, action="programme.create", target=f"programme:{code}",
                 now=now, data={"name": name, "purpose": programme.purpose.value,
                                "agency": agency,
                                "starts_on": starts_on.isoformat() if starts_on else None,
                                "ends_on": ends_on.isoformat() if ends_on else None})
    return programme


@dataclass(frozen=True)
class Attached:
    session: TestSession
    purpose_changed: bool
    stale_results: int  # results to rescore for the programme's purpose


def attach_session(db: Session, *, programme: Programme, session: TestSession, actor: str,
                   now: datetime) -> Attached:
    """Put the session in the programme (refused when it is in another one) and give it the
    programme's purpose."""
    if session.programme_id not in (None, programme.id):
        other = db.get_one(Programme, session.programme_id)
        raise ProgrammeError("session_elsewhere", session=session.code, programme=other.code)
    session.programme_id = programme.id
    db.flush()
    change = set_scoring_settings(db, session=session, purpose=programme.purpose.value,
                                  jpm_cap=None, actor=actor, now=now)
    audit.record(db, actor=actor, action="programme.attach_session",
                 target=f"programme:{programme.code}", now=now,
                 data={"session": session.code, "purpose_changed": change.changed,
                       "stale_results": change.stale_results})
    return Attached(session, change.changed, change.stale_results)


def detach_session(db: Session, *, programme: Programme, session: TestSession, actor: str,
                   now: datetime) -> None:
    if session.programme_id != programme.id:
        raise ProgrammeError("session_not_in", session=session.code, programme=programme.code)
    session.programme_id = None
    db.flush()
    audit.record(db, actor=actor, action="programme.detach_session",
                 target=f"programme:{programme.code}", now=now, data={"session": session.code})


def programme_sessions(db: Session, programme: Programme) -> list[TestSession]:
    return list(db.scalars(select(TestSession).where(TestSession.programme_id == programme.id)
                           .order_by(TestSession.starts_at, TestSession.code)))


def free_sessions(db: Session) -> list[TestSession]:
    """Sessions in no programme, the newest first (the attach form's choices)."""
    return list(db.scalars(select(TestSession).where(TestSession.programme_id.is_(None))
                           .order_by(TestSession.starts_at.desc(), TestSession.code)))


@dataclass(frozen=True)
class ProgrammeRow:
    programme: Programme
    sessions: int
    people: int  # distinct NIPs on the rosters of its sessions


def programme_rows(db: Session) -> list[ProgrammeRow]:
    sessions = dict(db.execute(select(TestSession.programme_id, func.count(TestSession.id))
                               .where(TestSession.programme_id.is_not(None))
                               .group_by(TestSession.programme_id)).all())
    people = dict(db.execute(
        select(TestSession.programme_id, func.count(func.distinct(RosterEntry.participant_id)))
        .join(RosterEntry, RosterEntry.session_id == TestSession.id)
        .where(TestSession.programme_id.is_not(None)).group_by(TestSession.programme_id)).all())
    return [ProgrammeRow(p, sessions.get(p.id, 0), people.get(p.id, 0))
            for p in db.scalars(select(Programme).order_by(Programme.created_at.desc(),
                                                           Programme.code))]
