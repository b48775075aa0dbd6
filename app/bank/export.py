"""Writing a stored bank version back as a CACT bank file (zip with bank.yaml and media/)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from decimal import Decimal
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.bank.formats import FORMAT_ID
from app.bank.models import (
    BankMedia,
    BankPassage,
    BankVersion,
    Item,
    ItemBank,
    ItemKind,
    ItemOption,
)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def version_document(db: Session, version: BankVersion) -> dict[str, Any]:
    """The version as a CACT bank document (the structure of docs/itembank-format.md)."""
    bank = db.get_one(ItemBank, version.bank_id)
    items = list(db.scalars(select(Item).where(Item.bank_version_id == version.id)
                            .order_by(Item.id)))
    options: dict[int, list[ItemOption]] = {}
    for option in db.scalars(select(ItemOption).join(Item, Item.id == ItemOption.item_id)
                             .where(Item.bank_version_id == version.id)
                             .order_by(ItemOption.item_id, ItemOption.position)):
        options.setdefault(option.item_id, []).append(option)
    rules = dict(version.scoring_rules or {})
    constructs = rules.pop("constructs", None)
    doc: dict[str, Any] = {
        "format": FORMAT_ID,
        "bank": {"code": bank.code, "title": bank.title, "kind": bank.kind.value},
    }
    if constructs:
        doc["constructs"] = constructs
    if rules:
        doc["scoring"] = rules
    passages = db.scalars(select(BankPassage).where(BankPassage.bank_version_id == version.id)
                          .order_by(BankPassage.id)).all()
    if passages:
        doc["passages"] = [{"code": p.code, "title": p.title, "text": p.content}
                           for p in passages]
    doc["items"] = [_item_document(item, options.get(item.id, [])) for item in items]
    return doc


def _item_document(item: Item, options: list[ItemOption]) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": item.code, "kind": item.kind.value,
                             "construct": item.construct}
    if item.level is not None:
        entry["level"] = item.level
    irt = {k: v for k, v in (("a", item.irt_a), ("b", item.irt_b), ("c", item.irt_c))
           if v is not None}
    if irt:
        entry["irt"] = irt
    if item.tags:
        entry["tags"] = list(item.tags)
    if item.meta:
        entry["meta"] = dict(item.meta)
    if item.passage:
        entry["passage"] = item.passage
    scoring = dict(item.scoring or {})
    if scoring.pop("reverse", False):
        entry["reverse"] = True
    if scoring:
        entry["scoring"] = scoring
    entry["stem"] = item.stem
    weight_field = "points" if item.kind == ItemKind.multiple else "weight"
    entry["options"] = []
    for option in options:
        row: dict[str, Any] = {"id": option.label, "text": option.content}
        if option.is_key:
            row["key"] = True
        if option.weight is not None:
            row[weight_field] = _number(option.weight)
        if option.level is not None:
            row["level"] = option.level
        entry["options"].append(row)
    return entry


def export_version_zip(db: Session, version: BankVersion) -> bytes:
    doc = version_document(db, version)
    text = yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bank.yaml", text)
        for media in db.scalars(select(BankMedia).where(BankMedia.bank_version_id == version.id)
                                .order_by(BankMedia.name)):
            archive.writestr(f"media/{media.name}", media.data)
    return buffer.getvalue()


def export_version(db: Session, version: BankVersion, *, actor: str, now: datetime) -> bytes:
    """The bank zip of one version. It carries every key and weight, so the export is an audit
    row, whoever asks for it: the admin page and ``cact bank export`` both come here."""
    data = export_version_zip(db, version)
    code = db.scalar(select(ItemBank.code).where(ItemBank.id == version.bank_id))
    audit.record(db, actor=actor, action="bank.export", target=f"bank:{code}/v{version.version}",
                 now=now)
    return data
