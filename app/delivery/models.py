"""Attempts and the answers that must never be lost (the sessions and rosters they belong to
are ``app.sessions.models``).

Time is stored as absolute UTC deadlines; the page only displays what the server computes.
Answers carry a per-attempt sequence number so late or repeated saves never regress them, and
every accepted change is also appended to ``answer_events`` (never updated, never deleted).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime, str_enum


class AttemptState(enum.StrEnum):
    # Drawn when the session was prepared, before its taker logged in: nobody is there yet, so
    # everything that counts who came treats it like no attempt at all (see PRESENT).
    prepared = "prepared"
    not_started = "not_started"  # logged in, reading instructions
    active = "active"
    paused = "paused"
    submitted = "submitted"
    expired = "expired"  # time ran out and the server closed it


# Handed in, by the taker or a proctor (submitted) or by the clock (expired): what is scored.
DONE_STATES = (AttemptState.submitted, AttemptState.expired)
# Every state of someone who logged in (a prepared attempt is a seat nobody took yet).
PRESENT_STATES = (AttemptState.not_started, AttemptState.active, AttemptState.paused,
                  AttemptState.submitted, AttemptState.expired)


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
