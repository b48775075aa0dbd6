"""Item bank operations: import (any format, all-or-nothing, versioned), export, freezing and
audited key corrections. Reading an upload (no database) is app/bank/reading.py."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from app import audit
from app.bank.models import (
    BankKind,
    BankMedia,
    BankPassage,
    BankVersion,
    Item,
    ItemBank,
    ItemKind,
    ItemOption,
    KeyCorrection,
)
from app.bank.parsed import ImportFailed, ParsedBank, Problem, problem
from app.bank.reading import ImportOptions, read_bank
from app.bank.sanitize import MEDIA_TYPES, media_names


@dataclass
class ImportOutcome:
    bank_code: str
    version: int
    version_id: int
    created: bool  # False: identical content was already stored as this version
    item_count: int
    skipped: list[Problem] = field(default_factory=list)


class FrozenVersionError(RuntimeError):
    """A change to the items of a bank version that a session has used."""


# -- storing ------------------------------------------------------------------------------------


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def canonical_content(bank: ParsedBank) -> dict[str, Any]:
    """What a version *is*: equal content gives an equal checksum, whatever the format.
    Passages count only where there are some, so banks stored before passages existed keep
    their checksum (re-uploading one is still recognised as the same version)."""
    content = {
        "code": bank.code,
        "title": bank.title,
        "kind": bank.kind,
        "scoring_rules": bank.scoring_rules,
        "constructs": bank.extra_constructs,
        "media": {name: hashlib.sha256(data).hexdigest() for name, data in bank.media.items()},
        "items": [
            {
                "code": i.code, "kind": i.kind, "construct": i.construct, "level": i.level,
                "stem": i.stem, "irt": i.irt, "scoring": i.scoring, "tags": i.tags,
                "meta": i.meta,
                "options": [[o.ident, o.content, o.is_key, _decimal(o.weight), o.level]
                            for o in i.options],
                **({"passage": i.passage} if i.passage else {}),
            }
            for i in bank.items
        ],
    }
    if bank.passages:
        content["passages"] = {code: [p.title, p.content] for code, p in bank.passages.items()}
    return content


def checksum(bank: ParsedBank) -> str:
    body = json.dumps(canonical_content(bank), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def import_bank(
    db: Session,
    files: dict[str, bytes],
    *,
    source: str,
    options: ImportOptions,
    actor: str,
    actor_id: int | None,
    now: datetime,
) -> ImportOutcome:
    """Read, check and store a bank upload as a new version. Raises ImportFailed listing every
    problem, having changed nothing; an upload identical to a stored version is a no-op."""
    bank = read_bank(files, source=source, options=options)
    return store_bank(db, bank, source=source, actor=actor, actor_id=actor_id, now=now)


def store_bank(db: Session, bank: ParsedBank, *, source: str, actor: str, actor_id: int | None,
               now: datetime) -> ImportOutcome:
    """Store a bank read by read_bank() as a new version (or find the identical one)."""
    existing = db.scalar(select(ItemBank).where(ItemBank.code == bank.code))
    if existing is not None and existing.kind.value != bank.kind:
        raise ImportFailed([problem(source, "", "", key="bank_kind_taken", code=bank.code,
                                    kind=existing.kind.value)])
    digest = checksum(bank)
    if existing is not None:
        same = db.scalar(select(BankVersion).where(BankVersion.bank_id == existing.id,
                                                   BankVersion.checksum == digest))
        if same is not None:
            return ImportOutcome(bank.code, same.version, same.id, False, len(bank.items),
                                 bank.skipped)
    else:
        existing = ItemBank(code=bank.code, title=bank.title, kind=BankKind(bank.kind),
                            created_at=now)
        db.add(existing)
        db.flush()
    existing.title = bank.title
    number = (db.scalar(select(func.max(BankVersion.version))
                        .where(BankVersion.bank_id == existing.id)) or 0) + 1
    rules = dict(bank.scoring_rules)
    if bank.extra_constructs:
        rules["constructs"] = bank.extra_constructs
    version = BankVersion(bank_id=existing.id, version=number, checksum=digest, frozen=False,
                          key_revision=0, scoring_rules=rules, source_filename=source[:255],
                          created_at=now, created_by=actor_id)
    db.add(version)
    db.flush()
    _store_items(db, version.id, bank)
    audit.record(db, actor=actor, action="bank.import", target=f"bank:{bank.code}",
                 now=now, data={"version": number, "items": len(bank.items), "checksum": digest,
                                "source": source,
                                "skipped": [str(p) for p in bank.skipped]})
    return ImportOutcome(bank.code, number, version.id, True, len(bank.items), bank.skipped)


def _store_items(db: Session, version_id: int, bank: ParsedBank) -> None:
    rows = [
        {"bank_version_id": version_id, "code": i.code, "kind": ItemKind(i.kind),
         "construct": i.construct, "level": i.level, "stem": i.stem,
         "media": sorted(_media_names(i) | (media_names(bank.passages[i.passage].content)
                                            if i.passage in bank.passages else set())),
         "irt_a": (i.irt or {}).get("a"), "irt_b": (i.irt or {}).get("b"),
         "irt_c": (i.irt or {}).get("c"), "scoring": i.scoring, "tags": i.tags,
         "meta": i.meta, "passage": i.passage}
        for i in bank.items
    ]
    ids = db.scalars(insert(Item).returning(Item.id, sort_by_parameter_order=True), rows).all()
    options = [
        {"item_id": item_id, "position": pos, "label": o.ident[:16], "content": o.content,
         "is_key": o.is_key, "weight": o.weight, "level": o.level}
        for item_id, parsed in zip(ids, bank.items, strict=True)
        for pos, o in enumerate(parsed.options)
    ]
    if options:
        db.execute(insert(ItemOption), options)
    if bank.passages:
        db.execute(insert(BankPassage), [
            {"bank_version_id": version_id, "code": p.code, "title": p.title[:200],
             "content": p.content} for p in bank.passages.values()])
    for name, data in sorted(bank.media.items()):
        suffix = "." + name.rsplit(".", 1)[-1].lower()
        db.add(BankMedia(bank_version_id=version_id, name=name, mime_type=MEDIA_TYPES[suffix],
                         sha256=hashlib.sha256(data).hexdigest(), data=data))
    db.flush()


def _media_names(item: Any) -> set[str]:
    return media_names(item.stem + "".join(o.content for o in item.options))


# -- frozen versions ----------------------------------------------------------------------------


def freeze_versions(db: Session, version_ids: list[int]) -> None:
    """Mark versions as used by a session: their items can no longer change."""
    for version in db.scalars(select(BankVersion).where(BankVersion.id.in_(version_ids))):
        version.frozen = True


_KEY_FIELDS = {"is_key", "weight"}


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_frozen_versions(session: Session, _ctx: Any, _instances: Any) -> None:
    """The database-side promise behind "a frozen version never changes": any flush that
    touches items, options or media of a frozen version fails, except the key fields changed
    by change_key()."""
    touched = [o for o in list(session.new) + list(session.dirty) + list(session.deleted)
               if isinstance(o, Item | ItemOption | BankMedia)]
    if not touched:
        return
    in_correction = session.info.get("key_correction", False)
    with session.no_autoflush:
        for obj in touched:
            if isinstance(obj, ItemOption):
                item = session.get(Item, obj.item_id)
                version_id = item.bank_version_id if item else None
            else:
                version_id = obj.bank_version_id
            version = session.get(BankVersion, version_id) if version_id else None
            if version is None or not version.frozen:
                continue
            if in_correction and isinstance(obj, ItemOption) and obj in session.dirty:
                from sqlalchemy import inspect as sa_inspect

                changed = {a.key for a in sa_inspect(obj).attrs if a.history.has_changes()}
                if changed <= _KEY_FIELDS:
                    continue
            raise FrozenVersionError(
                f"bank version {version.id} is frozen (used by a session); import a new "
                "version or make an audited key correction"
            )


# -- key corrections ----------------------------------------------------------------------------


def current_key(item: Item, options: list[ItemOption]) -> dict[str, Any]:
    if item.kind == ItemKind.single:
        return {"key": next((o.label for o in options if o.is_key), None)}
    return {"weights": {o.label: _decimal(o.weight) for o in options}}


def change_key(
    db: Session,
    *,
    item: Item,
    key: str | None = None,
    weights: dict[str, Decimal] | None = None,
    reason: str,
    actor: str,
    actor_id: int | None,
    now: datetime,
) -> KeyCorrection:
    """Change the key (single) or the weights (other kinds) of one item, also in a frozen
    version. Records who, when, why, old and new key, and raises the version's key revision so
    scoring knows which results to redo. The admin's action is
    ``app.scoring.corrections.correct_key``, which also rescores the results concerned."""
    if not reason.strip():
        raise ValueError("a key correction needs a reason")
    options = list(db.scalars(select(ItemOption).where(ItemOption.item_id == item.id)
                              .order_by(ItemOption.position)))
    labels = {o.label for o in options}
    old = current_key(item, options)
    if item.kind == ItemKind.single:
        if key not in labels:
            raise ValueError(f"option {key!r} does not exist; choose one of {sorted(labels)}")
        if old["key"] == key:
            raise ValueError("that is already the key")
    else:
        if not weights or set(weights) != labels:
            raise ValueError(f"give a weight for every option: {sorted(labels)}")
        if any(w < 0 for w in weights.values()) and item.kind != ItemKind.multiple:
            raise ValueError("weights cannot be negative")
    version = db.get_one(BankVersion, item.bank_version_id)
    session_info = db.info
    session_info["key_correction"] = True
    try:
        for option in options:
            if item.kind == ItemKind.single:
                option.is_key = option.label == key
            elif weights is not None:  # checked above: one weight per option
                option.weight = weights[option.label]
        version.key_revision += 1
        db.flush()
    finally:
        session_info.pop("key_correction", None)
    new = current_key(item, options)
    correction = KeyCorrection(item_id=item.id, revision=version.key_revision, old_key=old,
                               new_key=new, reason=reason.strip(), corrected_by=actor_id,
                               corrected_at=now)
    db.add(correction)
    bank = db.get_one(ItemBank, version.bank_id)
    audit.record(db, actor=actor, action="bank.key_correction",
                 target=f"item:{bank.code}/v{version.version}/{item.code}", reason=reason.strip(),
                 now=now, data={"old": old, "new": new, "key_revision": version.key_revision})
    db.flush()
    return correction
