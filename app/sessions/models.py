"""Test sessions, the people on their rosters and the proctors assigned to them.

A participant is a civil servant identified by NIP across events; a roster entry is their seat
in one session, with the login token kept only as an HMAC (for login) and encrypted with the
server secret (to reprint cards). The attempts and answers are the taker side's tables
(``app.delivery.models``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, str_enum

# Functional grades of the national job-grade rules; the required competency levels are
# looked up by these exact names, so a typo must be caught where a roster or a standard is
# read, not when scoring.
GRADES = ("Ahli Utama", "Ahli Madya", "Ahli Muda", "Ahli Pertama",
          "Penyelia", "Mahir", "Terampil", "Pemula")


def clean_nip(raw: str) -> str:
    """What people type around a NIP: spaces (also non-breaking) and Excel's text apostrophe."""
    return re.sub(r"\s+", "", raw.replace("\u00a0", " ")).lstrip("'").replace(" ", "")


class SessionState(enum.StrEnum):
    scheduled = "scheduled"
    open = "open"
    paused = "paused"
    closed = "closed"


class JobGroup(enum.StrEnum):
    administrator = "administrator"
    pengawas = "pengawas"
    fungsional = "fungsional"
    pelaksana = "pelaksana"


class TestSession(Base):
    __tablename__ = "test_sessions"
    __test__ = False  # a domain name, not a pytest test class

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    room: Mapped[str] = mapped_column(String(100), default="")
    blueprint_id: Mapped[int] = mapped_column(ForeignKey("blueprints.id", ondelete="RESTRICT"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[SessionState] = mapped_column(
        str_enum(SessionState, "session_state"), default=SessionState.scheduled
    )
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When every roster entry's attempt and form were drawn (app/sessions/prepare.py); None
    # until then. Entries added later are drawn as they come.
    prepared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    public_scores: Mapped[bool] = mapped_column(default=False)
    # Safe Exam Browser config key (optional) and other per-session switches.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The assessment programme the session is part of (app/programmes), if any.
    programme_id: Mapped[int | None] = mapped_column(
        ForeignKey("programmes.id", ondelete="SET NULL"), index=True)


class ProctorAssignment(Base):
    __tablename__ = "proctor_assignments"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("test_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Participant(Base):
    """A civil servant, identified by NIP across events."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    nip: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    job_group: Mapped[JobGroup] = mapped_column(str_enum(JobGroup, "job_group"))
    grade: Mapped[str] = mapped_column(String(64), default="")  # functional grade, e.g. Ahli Muda
    position: Mapped[str] = mapped_column(String(200), default="")
    unit: Mapped[str] = mapped_column(String(200), default="")  # OPD


class RosterEntry(Base):
    """A participant's seat in one session, with their login token. The token is kept only as
    an HMAC (for login) and encrypted with the server secret (to reprint cards)."""

    __tablename__ = "roster_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("test_sessions.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="RESTRICT"), index=True
    )
    token_hmac: Mapped[str] = mapped_column(String(64))
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    seat: Mapped[str] = mapped_column(String(32), default="")
    # What the person was when put on this roster: the participant row holds the current
    # job, these keep the one at the time of this test (history, the standard scored against).
    job_group: Mapped[JobGroup | None] = mapped_column(str_enum(JobGroup, "job_group"))
    grade: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("session_id", "participant_id"),)


@dataclass(frozen=True)
class Job:
    job_group: str
    grade: str
    position: str
    unit: str


def current_job(person: Participant) -> Job:
    """The job a person has now (the newest roster of any session)."""
    return Job(JobGroup(person.job_group).value, person.grade or "", person.position or "",
               person.unit or "")


def job_at_the_time(entry: RosterEntry, person: Participant) -> Job:
    """The job kept on this roster entry, the one a result of that session is read against;
    each part falls back to today's where the seat kept none (rosters made before it did)."""
    now = current_job(person)
    return Job(JobGroup(entry.job_group).value if entry.job_group is not None else now.job_group,
               entry.grade if entry.grade is not None else now.grade,
               entry.position if entry.position is not None else now.position,
               entry.unit if entry.unit is not None else now.unit)
