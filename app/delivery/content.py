"""Frozen bank content, read once per process.

At 08:00 every taker's login draws a form from the same pool and every first page shows the
same items: reading the pool (items and option ids of the session's bank versions) and the
item and option HTML from the database for each of 2,000 takers was a third of the start's
work. A frozen bank version never changes again except for its keys and weights (an audited
key correction), and neither is held here, so caching what is below is exact, in every worker
process alike. Versions that are not frozen (an admin's preview) are always read afresh.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.assembly.forms import PoolItem
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
        for item_id, version_id, kind, stem, frozen, title, passage in db.execute(
                select(Item.id, Item.bank_version_id, Item.kind, Item.stem, BankVersion.frozen,
                       BankPassage.title, BankPassage.content)
                .join(BankVersion, BankVersion.id == Item.bank_version_id)
                .outerjoin(BankPassage, and_(BankPassage.bank_version_id == Item.bank_version_id,
                                             BankPassage.code == Item.passage))
                .where(Item.id.in_(missing))):
            fresh[item_id] = ItemContent(version_id, kind.value, stem, title or "", passage or "")
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
