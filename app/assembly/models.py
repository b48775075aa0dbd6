"""Blueprints: which items a form draws from a bank version, in which timed sections."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime


class Blueprint(Base):
    __tablename__ = "blueprints"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Whole-test limit in seconds (None: only section limits apply).
    time_limit_s: Mapped[int | None]
    # {"sections": [{"title", "instructions", "time_limit_s", "picks": [{"bank_version_id",
    #   "construct", "level", "count"}], "shuffle_items", "shuffle_options", "allow_back"}]}
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BlueprintBankVersion(Base):
    """The bank versions a blueprint draws from (a CACT mixes potensi and kompetensi banks);
    kept as rows so a version in use can be found and frozen, and cannot be deleted."""

    __tablename__ = "blueprint_bank_versions"

    blueprint_id: Mapped[int] = mapped_column(
        ForeignKey("blueprints.id", ondelete="CASCADE"), primary_key=True
    )
    bank_version_id: Mapped[int] = mapped_column(
        ForeignKey("bank_versions.id", ondelete="RESTRICT"), primary_key=True
    )
