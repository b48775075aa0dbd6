"""What the admin's bank pages show: the banks with their latest version, a bank's versions, a
version's items (filtered, a page at a time) and one item with its options and key corrections.
Read-only, except ``record_key_view``: showing the key is as consequential as exporting it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.bank.models import BankVersion, Item, ItemBank, ItemKind, ItemOption, KeyCorrection
from app.db import Database

PAGE_SIZE = 50


def bank_rows(db: Session) -> list[dict[str, Any]]:
    """Every bank with its latest version and that version's number of items, by code."""
    latest = (select(BankVersion.bank_id, func.max(BankVersion.version).label("v"))
              .group_by(BankVersion.bank_id).subquery())
    rows = db.execute(
        select(ItemBank, BankVersion, func.count(Item.id))
        .join(latest, latest.c.bank_id == ItemBank.id)
        .join(BankVersion, (BankVersion.bank_id == ItemBank.id)
              & (BankVersion.version == latest.c.v))
        .outerjoin(Item, Item.bank_version_id == BankVersion.id)
        .group_by(ItemBank.id, BankVersion.id)
        .order_by(ItemBank.code))
    return [{"bank": bank, "version": version, "item_count": count}
            for bank, version, count in rows]


def bank_by_code(db: Session, code: str) -> ItemBank | None:
    return db.scalar(select(ItemBank).where(ItemBank.code == code))


def version_of(db: Session, bank: ItemBank, number: int) -> BankVersion | None:
    return db.scalar(select(BankVersion).where(BankVersion.bank_id == bank.id,
                                               BankVersion.version == number))


def version_rows(db: Session, bank: ItemBank) -> list[dict[str, Any]]:
    """A bank's versions, newest first, with their number of items."""
    rows = db.execute(
        select(BankVersion, func.count(Item.id))
        .outerjoin(Item, Item.bank_version_id == BankVersion.id)
        .where(BankVersion.bank_id == bank.id)
        .group_by(BankVersion.id).order_by(BankVersion.version.desc()))
    return [{"version": v, "item_count": n} for v, n in rows]


@dataclass(frozen=True)
class ItemPage:
    items: list[Item]
    total: int
    page: int
    pages: int
    constructs: list[tuple[str, int]]  # every construct of the version and its item count


def item_page(db: Session, version: BankVersion, *, construct: str = "", kind: str = "",
              level: str = "", page: int = 1) -> ItemPage:
    """One page of a version's items, filtered by construct, kind and level (an unknown kind
    or a level that is not a number filters nothing)."""
    query = select(Item).where(Item.bank_version_id == version.id)
    if construct:
        query = query.where(Item.construct == construct)
    if kind in {k.value for k in ItemKind}:
        query = query.where(Item.kind == ItemKind(kind))
    if level.isdigit():
        query = query.where(Item.level == int(level))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    items = list(db.scalars(query.order_by(Item.id).offset((page - 1) * PAGE_SIZE)
                            .limit(PAGE_SIZE)))
    constructs = db.execute(select(Item.construct, func.count()).where(
        Item.bank_version_id == version.id).group_by(Item.construct).order_by(Item.construct))
    return ItemPage(items=items, total=total, page=page,
                    pages=max(1, -(-total // PAGE_SIZE)),
                    constructs=[(c, n) for c, n in constructs])


def item_detail(db: Session, item_id: int) -> dict[str, Any] | None:
    """One item with its version, bank, options in order and key corrections; None if there is
    no such item."""
    item = db.get(Item, item_id)
    if item is None:
        return None
    version = db.get_one(BankVersion, item.bank_version_id)
    options = list(db.scalars(select(ItemOption).where(ItemOption.item_id == item.id)
                              .order_by(ItemOption.position)))
    corrections = list(db.scalars(select(KeyCorrection).where(KeyCorrection.item_id == item.id)
                                  .order_by(KeyCorrection.revision)))
    return {"item": item, "version": version, "bank": db.get_one(ItemBank, version.bank_id),
            "options": options, "corrections": corrections}


def record_key_view(database: Database, detail: dict[str, Any], *, actor: str,
                    now: datetime) -> None:
    """Audit that a staff member opened an item with its key, in a transaction of its own: the
    page that shows it only reads."""
    with database.transaction() as db:
        audit.record(db, actor=actor, action="item.key_view",
                     target=f"item:{detail['item'].code}", now=now,
                     data={"item_id": detail["item"].id, "bank": detail["bank"].code,
                           "version": detail["version"].version})
