"""Item banks, their immutable versions, items, options, media and audited key corrections."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, str_enum


class BankKind(enum.StrEnum):
    potensi = "potensi"
    kompetensi = "kompetensi"


class ItemKind(enum.StrEnum):
    single = "single"
    weighted = "weighted"
    multiple = "multiple"
    likert = "likert"


class ItemBank(Base):
    __tablename__ = "item_banks"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[BankKind] = mapped_column(str_enum(BankKind, "bank_kind"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BankVersion(Base):
    """One upload of a bank. Frozen once any session uses it: corrections then go through
    KeyCorrection (audited) or a new version."""

    __tablename__ = "bank_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id", ondelete="CASCADE"))
    version: Mapped[int]
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the normalised content
    frozen: Mapped[bool] = mapped_column(default=False)
    key_revision: Mapped[int] = mapped_column(default=0)
    # Points per kind, cut scores / norm tables per construct: what scoring needs from the bank.
    scoring_rules: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    source_filename: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        UniqueConstraint("bank_id", "version"),
        UniqueConstraint("bank_id", "checksum"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_version_id: Mapped[int] = mapped_column(
        ForeignKey("bank_versions.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[ItemKind] = mapped_column(str_enum(ItemKind, "item_kind"))
    construct: Mapped[str] = mapped_column(String(100), index=True)
    level: Mapped[int | None]
    stem: Mapped[str] = mapped_column(Text)  # sanitized HTML
    media: Mapped[list[str]] = mapped_column(JSONType, default=list)
    irt_a: Mapped[float | None]
    irt_b: Mapped[float | None]
    irt_c: Mapped[float | None]
    # Kind-specific scoring data kept server-side (bounds for multiple, scale/reverse for likert).
    scoring: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Code of the BankPassage of the same version the item is asked about, if any.
    passage: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("bank_version_id", "code"),
        CheckConstraint("level IS NULL OR (level BETWEEN 1 AND 5)", name="level_range"),
    )


class ItemOption(Base):
    __tablename__ = "item_options"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]  # authoring order; the taker sees the attempt's shuffled order
    label: Mapped[str] = mapped_column(String(16))  # the author's identifier (A, B, ...)
    content: Mapped[str] = mapped_column(Text)  # sanitized HTML
    is_key: Mapped[bool] = mapped_column(default=False)
    weight: Mapped[Decimal | None] = mapped_column(Numeric(8, 3))
    level: Mapped[int | None]

    __table_args__ = (UniqueConstraint("item_id", "position"),)


class BankPassage(Base):
    """A reading passage (story, table, case) of a bank version that several items are asked
    about: stored once, shown beside each of its items."""

    __tablename__ = "bank_passages"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_version_id: Mapped[int] = mapped_column(
        ForeignKey("bank_versions.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default="")
    content: Mapped[str] = mapped_column(Text)  # sanitized HTML

    __table_args__ = (UniqueConstraint("bank_version_id", "code"),)


class BankMedia(Base):
    """Images of a bank version, stored in the database so every worker serves the same bytes."""

    __tablename__ = "bank_media"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_version_id: Mapped[int] = mapped_column(
        ForeignKey("bank_versions.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (UniqueConstraint("bank_version_id", "name"),)


class KeyCorrection(Base):
    """An audited change of key or weights in a frozen version; scoring rescoring reads it."""

    __tablename__ = "key_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int]
    old_key: Mapped[dict[str, Any]] = mapped_column(JSONType)
    new_key: Mapped[dict[str, Any]] = mapped_column(JSONType)
    reason: Mapped[str] = mapped_column(Text)
    corrected_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime())
