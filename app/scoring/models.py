"""Job standards and the stored outcome of scoring: per-construct scores and per-attempt
results, each stamped with the bank version and key revision that produced it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime


class JobStandard(Base):
    """Required level for (job group or functional grade, competency)."""

    __tablename__ = "job_standards"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_key: Mapped[str] = mapped_column(String(64))  # "administrator" or "fungsional:Ahli Muda"
    competency: Mapped[str] = mapped_column(String(100))
    required_level: Mapped[int]

    __table_args__ = (
        UniqueConstraint("job_key", "competency"),
        CheckConstraint("required_level BETWEEN 1 AND 5", name="required_level_range"),
    )


class ConstructScore(Base):
    __tablename__ = "construct_scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    construct: Mapped[str] = mapped_column(String(100))
    raw: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    max_raw: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    percent: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    level: Mapped[int | None]
    theta: Mapped[float | None]
    theta_se: Mapped[float | None]
    bank_version_id: Mapped[int] = mapped_column(ForeignKey("bank_versions.id"))
    key_revision: Mapped[int]
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("attempt_id", "construct"),)


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), unique=True
    )
    total_score: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    jpm: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    category: Mapped[str] = mapped_column(String(64), default="")
    potensi_band: Mapped[str] = mapped_column(String(32), default="")
    nine_box: Mapped[int | None]
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # gaps, strengths
    key_revision: Mapped[int]
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PerformanceRating(Base):
    """Kinerja imported from outside the test, for the nine-box performance axis."""

    __tablename__ = "performance_ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(32))
    rating: Mapped[str] = mapped_column(String(32))  # below / as_expected / above
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))

    __table_args__ = (UniqueConstraint("participant_id", "period"),)


class ValidityDecision(Base):
    """An admin's decision on an attempt that is "tidak dapat dinilai" (app/scoring/validity.py):
    ``accepted`` scores it as usual from then on (a proctor saw the person work slowly through a
    disturbed start, for example). The reason is required and the decision is audited."""

    __tablename__ = "validity_decisions"

    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True
    )
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(2000))
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
