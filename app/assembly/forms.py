"""Building one taker's form from a blueprint: which items, in which order, with which option
order. A pure function of (blueprint spec, the bank versions' items, seed), so the stored seed
and bank version rebuild exactly the same form at any time (disputes, audits, rescoring).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PoolItem:
    """What form building needs to know of an item (no content, no key)."""

    id: int
    bank_version_id: int
    construct: str
    level: int | None
    option_ids: tuple[int, ...]  # in authoring order
    # The author's wishes (QTI shuffle="false", fixed="true"; meta in a CACT bank): options
    # never shuffled, or these options keeping their place while the others are shuffled.
    shuffle: bool = True
    fixed: frozenset[int] = frozenset()
    passage: str | None = None  # the passage it is asked about (code, within its version)


@dataclass(frozen=True)
class FormEntry:
    position: int  # 1-based across the whole form
    section: int  # 0-based section index
    item_id: int
    option_order: tuple[int, ...]


class FormError(ValueError):
    """The bank no longer has enough items for a pick (the blueprint check should prevent it)."""


def build_form(spec: dict[str, Any], pool: list[PoolItem], seed: int) -> list[FormEntry]:
    """Draw each section's picks without replacement, then shuffle items and options as the
    section says. Levelled picks are drawn before unlevelled ones of the same construct, so a
    "2 items of numerik at level 3" pick is never starved by a "5 items of numerik" pick."""
    rng = random.Random(seed)  # noqa: S311 - seeded on purpose: the seed rebuilds the form
    by_key: dict[tuple[int, str], list[PoolItem]] = {}
    for item in sorted(pool, key=lambda i: i.id):
        by_key.setdefault((item.bank_version_id, item.construct), []).append(item)
    used: set[int] = set()
    entries: list[FormEntry] = []
    position = 0
    for index, section in enumerate(spec["sections"]):
        picks = sorted(section["picks"], key=lambda p: p.get("level") is None)
        chosen: list[PoolItem] = []
        for pick in picks:
            candidates = [i for i in by_key.get((pick["bank_version_id"], pick["construct"]), [])
                          if i.id not in used
                          and (pick.get("level") is None or i.level == pick["level"])]
            if len(candidates) < pick["count"]:
                raise FormError(f"section {index + 1}: {pick['construct']} needs "
                                f"{pick['count']} items, {len(candidates)} left")
            drawn = rng.sample(candidates, pick["count"])
            used.update(i.id for i in drawn)
            chosen.extend(drawn)
        if section.get("shuffle_items", True):
            rng.shuffle(chosen)
        else:
            chosen.sort(key=lambda i: i.id)  # the bank's own order
        if section.get("keep_passages", True):
            chosen = keep_passages_together(chosen)
        for item in chosen:
            options = list(item.option_ids)
            if section.get("shuffle_options", True) and item.shuffle:
                if item.fixed:  # "none of the above" stays last: only the others move
                    movable = [o for o in options if o not in item.fixed]
                    rng.shuffle(movable)
                    rest = iter(movable)
                    options = [o if o in item.fixed else next(rest) for o in options]
                else:
                    rng.shuffle(options)
            position += 1
            entries.append(FormEntry(position, index, item.id, tuple(options)))
    return entries


def keep_passages_together(items: list[PoolItem]) -> list[PoolItem]:
    """The items asked about one passage moved together, in bank order, to where the first
    of them is; other items keep their places. Draws nothing, so a form without passages is
    exactly the form it was before passages existed."""
    groups: dict[tuple[int, str], list[PoolItem]] = {}
    for item in items:
        if item.passage:
            groups.setdefault((item.bank_version_id, item.passage), []).append(item)
    if not groups:
        return items
    result: list[PoolItem] = []
    for item in items:
        if not item.passage:
            result.append(item)
            continue
        group = groups.pop((item.bank_version_id, item.passage), None)
        if group is not None:  # its first appearance: the whole group, in bank order
            result.extend(sorted(group, key=lambda i: i.id))
    return result
