"""Frozen bank content, read once per process.

At 08:00 every taker's login draws a form from the same pool and every first page shows the
same items: reading the pool (items and option ids of the session's bank versions) and the
item and option HTML from the database for each of 2,000 takers was a third of the start's
work. A frozen bank version never changes again except for its keys and weights (an audited
key correction), and neither is held here, so caching what is below is exact, in every worker
process alike. Versions that are not frozen (an admin's preview) are always read afresh.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.assembly.forms import PoolItem
from app.assembly.models import Blueprint
from app.bank.models import BankPassage, BankVersion, Item, ItemOption
from app.bank.sanitize import media_names
from app.delivery.models import DONE_STATES, Attempt, AttemptItem

MAX_CACHED_ITEMS = 50_000  # a few large banks; beyond it the cache starts afresh
MAX_CACHED_FORMS = 20_000  # attempts whose images are known; beyond it the cache starts afresh

_lock = threading.Lock()


@dataclass
class _Cache:
    pools: dict[tuple[int, ...], list[PoolItem]] = field(default_factory=dict)
    items: dict[int, ItemContent] = field(default_factory=dict)
    options: dict[int, dict[int, str]] = field(default_factory=dict)  # item -> option -> HTML
    # (attempt id, seed) -> {(bank version, image name): first section whose item shows it}
    form_media: dict[tuple[int, int], dict[tuple[int, str], int]] = field(default_factory=dict)
    encoded: dict[int, EncodedItem] = field(default_factory=dict)  # item -> its JSON parts
    rules: dict[int, BlueprintRules] = field(default_factory=dict)  # blueprint id -> its rules


# One cache per database (keyed by its connection pool): ids mean nothing across databases,
# and a process that opens several (the tests, a migration tool) must never mix them.
_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cache(db: Session) -> _Cache:
    pool = db.get_bind().engine.pool
    cache = _caches.get(pool)
    if cache is None:
        with _lock:
            cache = _caches.setdefault(pool, _Cache())
    return cache


@dataclass(frozen=True)
class ItemContent:
    bank_version_id: int
    kind: str
    stem: str
    passage_title: str = ""
    passage: str = ""  # HTML of the passage the item is asked about, "" when none
    # A multiple-response item's bounds on how many options are chosen (choice_bounds).
    min_choices: int | None = None
    max_choices: int | None = None


def choice_bounds(scoring: dict[str, Any] | None) -> tuple[int | None, int | None]:
    """(min, max) options a multiple-response item lets the taker choose, from the item's
    scoring data (``min_choices`` / ``max_choices``; QTI minChoices / maxChoices). These are
    counts of options, not the score bounds ``min`` / ``max`` beside them. A missing,
    non-positive or non-integer value means no bound (QTI's maxChoices="0": any number)."""
    def bound(name: str) -> int | None:
        value = (scoring or {}).get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
            return None
        return int(value) if float(value).is_integer() else None
    low, high = bound("min_choices"), bound("max_choices")
    if low is not None and high is not None and low > high:
        low = high
    return low, high


@dataclass(frozen=True)
class EncodedItem:
    """An item's part of the taker's form as JSON, encoded once per process: the form of every
    taker is then joined from these bytes (app/delivery/views.py, ``attempt_bytes``) instead of
    being built and serialized item by item per request."""

    shown: bytes  # its members once its section is open: kind, stem, passage, choice bounds
    hidden: bytes  # the same while its section is still ahead: no stem, no passage
    options: dict[int, bytes]  # option id -> its HTML as a JSON string


@dataclass(frozen=True)
class BlueprintRules:
    """What delivery needs of a blueprint: the whole test's limit and each section's title,
    instructions, limit and whether it may be gone back to."""

    time_limit_s: int | None
    sections: list[dict[str, Any]]


def blueprint_rules(db: Session, blueprint_id: int) -> BlueprintRules:
    """The rules of a blueprint that a session uses. Such a blueprint can no longer be
    replaced (app/assembly/service.py, ``save_blueprint``), so once read they are kept: every
    start, page and section step of every taker needs them."""
    cache = _cache(db)
    known = cache.rules.get(blueprint_id)
    if known is not None:
        return known
    time_limit_s, spec = db.execute(select(Blueprint.time_limit_s, Blueprint.spec)
                                    .where(Blueprint.id == blueprint_id)).one()
    rules = BlueprintRules(time_limit_s, spec["sections"])
    with _lock:
        cache.rules[blueprint_id] = rules
    return rules


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _encode(item: ItemContent, options: dict[int, str]) -> EncodedItem:
    bounds = b',"min_choices":%b,"max_choices":%b' % (_json(item.min_choices),
                                                       _json(item.max_choices))
    passage = (b',"passage":%b,"passage_title":%b' % (_json(item.passage),
                                                       _json(item.passage_title))
               if item.passage else b',"passage":null,"passage_title":null')
    kind = b'"kind":%b' % _json(item.kind)
    return EncodedItem(
        shown=kind + b',"stem":' + _json(item.stem) + passage + bounds,
        hidden=kind + b',"stem":null,"passage":null,"passage_title":null' + bounds,
        options={option_id: _json(html) for option_id, html in options.items()})


def encoded(db: Session, items: dict[int, ItemContent], options: dict[int, dict[int, str]]
            ) -> dict[int, EncodedItem]:
    """The JSON parts of these items (as read by :func:`contents`); kept for frozen items."""
    cache = _cache(db)
    found = {i: cache.encoded[i] for i in items if i in cache.encoded}
    for item_id, item in items.items():
        if item_id not in found:
            found[item_id] = _encode(item, options[item_id])
            if cache.items.get(item_id) is item:  # frozen: the content cache holds it
                with _lock:
                    if len(cache.encoded) > MAX_CACHED_ITEMS:
                        cache.encoded.clear()
                    cache.encoded[item_id] = found[item_id]
    return found


def forget(engine) -> None:
    """Drop what is cached for this database (after it was emptied and refilled, e.g. a
    restore into a running process, or the tests' truncation)."""
    with _lock:
        _caches.pop(engine.pool, None)


def _all_frozen(db: Session, version_ids: Iterable[int]) -> bool:
    ids = set(version_ids)
    frozen = db.scalars(select(BankVersion.id).where(BankVersion.id.in_(ids),
                                                     BankVersion.frozen.is_(True)))
    return set(frozen) == ids


def pool(db: Session, version_ids: Iterable[int]) -> list[PoolItem]:
    """What form building draws from: every item of these versions with its option ids."""
    key = tuple(sorted(set(version_ids)))
    cache = _cache(db)
    cached = cache.pools.get(key)
    if cached is not None:
        return cached
    options: dict[int, list[int]] = {}
    labels: dict[int, dict[str, int]] = {}
    for item_id, option_id, label in db.execute(
            select(ItemOption.item_id, ItemOption.id, ItemOption.label)
            .join(Item, Item.id == ItemOption.item_id)
            .where(Item.bank_version_id.in_(key))
            .order_by(ItemOption.item_id, ItemOption.position)):
        options.setdefault(item_id, []).append(option_id)
        labels.setdefault(item_id, {})[label] = option_id
    items = []
    for i, v, c, lv, meta, passage in db.execute(
            select(Item.id, Item.bank_version_id, Item.construct, Item.level, Item.meta,
                   Item.passage)
            .where(Item.bank_version_id.in_(key))):
        order = meta or {}
        fixed = frozenset(labels.get(i, {})[label] for label in order.get("fixed") or ()
                          if label in labels.get(i, {}))
        items.append(PoolItem(i, v, c, lv, tuple(options.get(i, ())),
                              shuffle=order.get("shuffle") is not False, fixed=fixed,
                              passage=passage))
    if _all_frozen(db, key):
        with _lock:
            cache.pools[key] = items
    return items


def contents(db: Session, item_ids: Iterable[int]
             ) -> tuple[dict[int, ItemContent], dict[int, dict[int, str]]]:
    """Stem, kind and version of each item, and its options' HTML by option id."""
    wanted = set(item_ids)
    cache = _cache(db)
    missing = [i for i in wanted if i not in cache.items]
    items = {i: cache.items[i] for i in wanted if i in cache.items}
    options = {i: cache.options[i] for i in wanted if i in cache.options}
    if missing:
        fresh: dict[int, ItemContent] = {}
        frozen_of: dict[int, bool] = {}
        for item_id, version_id, kind, stem, frozen, title, passage, scoring in db.execute(
                select(Item.id, Item.bank_version_id, Item.kind, Item.stem, BankVersion.frozen,
                       BankPassage.title, BankPassage.content, Item.scoring)
                .join(BankVersion, BankVersion.id == Item.bank_version_id)
                .outerjoin(BankPassage, and_(BankPassage.bank_version_id == Item.bank_version_id,
                                             BankPassage.code == Item.passage))
                .where(Item.id.in_(missing))):
            low, high = choice_bounds(scoring) if kind.value == "multiple" else (None, None)
            fresh[item_id] = ItemContent(version_id, kind.value, stem, title or "", passage or "",
                                         low, high)
            frozen_of[item_id] = frozen
        fresh_options: dict[int, dict[int, str]] = {i: {} for i in fresh}
        for item_id, option_id, content in db.execute(
                select(ItemOption.item_id, ItemOption.id, ItemOption.content)
                .where(ItemOption.item_id.in_(missing))):
            fresh_options[item_id][option_id] = content
        items.update(fresh)
        options.update(fresh_options)
        with _lock:
            if len(cache.items) > MAX_CACHED_ITEMS:
                cache.items.clear()
                cache.options.clear()
            for item_id, item_content in fresh.items():
                if frozen_of[item_id]:
                    cache.items[item_id] = item_content
                    cache.options[item_id] = fresh_options[item_id]
    return items, options


def _form_media(db: Session, attempt: Attempt) -> dict[tuple[int, str], int]:
    """(bank version, image name) -> the first section of the attempt's form with an item
    whose stem or options show that image. Read from the same HTML the taker is sent.

    Kept per attempt: a lab's 40 PCs load a page's images at once, and the form of an attempt
    never changes. Keyed by (id, seed) too, because a reset attempt's id may be reused by its
    successor (SQLite), whose seed, and so form, is new. Only forms made entirely of frozen
    items are kept, like the item content above."""
    key = (attempt.id, attempt.seed)
    cache = _cache(db)
    known = cache.form_media.get(key)
    if known is not None:
        return known
    sections = dict(db.execute(select(AttemptItem.item_id, AttemptItem.section)
                               .where(AttemptItem.attempt_id == attempt.id)).all())
    items, options = contents(db, sections)
    shown: dict[tuple[int, str], int] = {}
    for item_id, section in sections.items():
        html = (items[item_id].passage + items[item_id].stem
                + "".join(options[item_id].values()))
        for name in media_names(html):
            where = (items[item_id].bank_version_id, name)
            shown[where] = min(section, shown.get(where, section))
    if all(i in cache.items for i in sections):  # frozen (the cache never holds others)
        with _lock:
            if len(cache.form_media) > MAX_CACHED_FORMS:
                cache.form_media.clear()
            cache.form_media[key] = shown
    return shown


def form_shows_media(db: Session, *, attempt: Attempt, version_id: int, name: str) -> bool:
    """Whether the taker's page may show this image now: an item of their own form shows it,
    in a section that is not still ahead of them (the page does not show those items yet)."""
    section = _form_media(db, attempt).get((version_id, name))
    if section is None:
        return False
    return (attempt.state in DONE_STATES
            or section <= attempt.current_section)
