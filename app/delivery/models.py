"""Test sessions, rosters, attempts and the answers that must never be lost.

Time is stored as absolute UTC deadlines; the page only displays what the server computes.
Answers carry a per-attempt sequence number so late or repeated saves never regress them, and
every accepted change is also appended to ``answer_events`` (never updated, never deleted).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime, str_enum


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


class AttemptState(enum.StrEnum):
    not_started = "not_started"  # logged in, reading instructions
    active = "active"
    paused = "paused"
    submitted = "submitted"
    expired = "expired"  # time ran out and the server closed it


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
    public_scores: Mapped[bool] = mapped_column(default=False)
    # Safe Exam Browser config key (optional) and other per-session switches.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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

    __table_args__ = (UniqueConstraint("session_id", "participant_id"),)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    roster_entry_id: Mapped[int] = mapped_column(
        ForeignKey("roster_entries.id", ondelete="RESTRICT"), unique=True
    )
    session_id: Mapped[int] = mapped_column(
        ForeignKey("test_sessions.id", ondelete="RESTRICT"), index=True
    )
    seed: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[AttemptState] = mapped_column(
        str_enum(AttemptState, "attempt_state"), default=AttemptState.not_started
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    extra_time_s: Mapped[int] = mapped_column(default=0)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_total_s: Mapped[int] = mapped_column(default=0)
    current_section: Mapped[int] = mapped_column(default=0)
    workstation_id: Mapped[str | None] = mapped_column(String(64))  # the seat that may save
    access_token_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    submit_reason: Mapped[str] = mapped_column(String(32), default="")

    __table_args__ = (Index("ix_attempts_session_id_state", "session_id", "state"),)


class AttemptSection(Base):
    """Per-section clock of an attempt (sections open one after another)."""

    __tablename__ = "attempt_sections"

    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True
    )
    section: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AttemptItem(Base):
    """The attempt's form: which item at which position, with its option order. Rebuilt
    identically from (seed, bank version), stored so the form never changes mid-test."""

    __tablename__ = "attempt_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int]
    section: Mapped[int]
    option_order: Mapped[list[int]] = mapped_column(JSONType)  # option ids as shown

    __table_args__ = (
        UniqueConstraint("attempt_id", "position"),
        UniqueConstraint("attempt_id", "item_id"),
    )


class Answer(Base):
    """The current answer to one item of one attempt: only a newer seq may replace it."""

    __tablename__ = "answers"

    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="RESTRICT"), primary_key=True
    )
    response: Mapped[Any] = mapped_column(JSONType, nullable=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    flagged: Mapped[bool] = mapped_column(default=False)
    server_time: Mapped[datetime] = mapped_column(UTCDateTime())


class AnswerEvent(Base):
    """Append-only history of every accepted save, for audit and disputes."""

    __tablename__ = "answer_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="RESTRICT"))
    response: Mapped[Any] = mapped_column(JSONType, nullable=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    flagged: Mapped[bool] = mapped_column(default=False)
    server_time: Mapped[datetime] = mapped_column(UTCDateTime())
    workstation_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_answer_events_attempt_id_seq", "attempt_id", "seq"),)
