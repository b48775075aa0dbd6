"""Assessment programmes, the choice of which attempt counts for a person, and key positions.

A programme (*program asesmen*) is one agency's assessment event: several sessions over days
and venues (``test_sessions.programme_id``), one purpose that selects the category rules.
Its results are one row per person (NIP) across its sessions; which attempt counts is a rule
(app/programmes/results.py) that an admin may override for one person, with a reason
(``programme_choices``, audited). A key position (*posisi kunci*) is a post the agency wants
to fill from the people tested, with its own required levels.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, str_enum


class Purpose(enum.StrEnum):
    mapping = "mapping"  # pemetaan kompetensi
    position = "position"  # pengisian jabatan


class Programme(Base):
    __tablename__ = "programmes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    agency: Mapped[str] = mapped_column(String(200), default="")
    purpose: Mapped[Purpose] = mapped_column(str_enum(Purpose, "programme_purpose"),
                                             default=Purpose.mapping)
    starts_on: Mapped[date | None] = mapped_column(Date())
    ends_on: Mapped[date | None] = mapped_column(Date())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProgrammeChoice(Base):
    """An admin's choice of the attempt that counts for one person in a programme, instead of
    the rule's (the reason is required; audited)."""

    __tablename__ = "programme_choices"

    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(2000))
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyPosition(Base):
    """A post to fill (e.g. "Kepala Dinas Pendidikan"), with the levels it requires per
    competency: copied from the job standard of ``job_key`` when it is created, then the
    post's own."""

    __tablename__ = "key_positions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200), default="")
    job_key: Mapped[str] = mapped_column(String(64))
    required: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
