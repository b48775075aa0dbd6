"""A bank's level rules as plain functions (no database): the level of a construct's score,
and which levels a form's items can reach at all.

A rule (``scoring.levels.<construct>`` in a bank file) gives its thresholds on one of two
scales (docs/itembank-format.md, docs/psychometrics.md):

- ``raw`` (the default): the raw score itself, so the rule holds only for the number of items
  it was written for;
- ``percent``: the raw score as a percent of the maximum of the items this person was given,
  so the same rule holds for a form that draws 4 items and one that draws 7.

Comparisons are exact: ``raw / maximum x 100 >= cut`` is computed as
``raw x 100 >= cut x maximum`` in Decimal, so a score exactly on a cut belongs to the upper
level on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from typing import Any

RAW = "raw"
PERCENT = "percent"
SCALES = (RAW, PERCENT)
LEVELS = (1, 2, 3, 4, 5)
ZERO = Decimal(0)
HUNDRED = Decimal(100)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def scale_of(rule: Mapping[str, Any]) -> str:
    return str(rule.get("scale") or RAW)


def thresholds(rule: Mapping[str, Any]) -> list[tuple[Decimal, int]]:
    """(lowest score, level) from the bottom, on the rule's scale: cut scores give levels 2-5;
    a norm table its rows (``min_raw``, or ``min_percent`` on the percent scale)."""
    if "cut_scores" in rule:
        return [(_dec(cut), level) for cut, level in zip(rule["cut_scores"], LEVELS[1:],
                                                         strict=False)]
    field = "min_percent" if scale_of(rule) == PERCENT else "min_raw"
    return [(_dec(row[field]), int(row["level"])) for row in rule["norm_table"]]


def levels_of(rule: Mapping[str, Any]) -> list[int]:
    """The levels a rule can give, lowest first."""
    if "cut_scores" in rule:
        return list(LEVELS)
    return sorted({1} | {level for _, level in thresholds(rule)})


def _at_least(raw: Decimal, maximum: Decimal | None, threshold: Decimal, scale: str) -> bool:
    if scale == PERCENT:
        if maximum is None:
            raise ValueError("a percent rule needs the maximum of the items given")
        if maximum <= 0:  # nothing could be scored: 0 %
            return threshold <= 0
        return raw * HUNDRED >= threshold * maximum
    return raw >= threshold


def level_for(raw: Decimal, rule: Mapping[str, Any] | None,
              maximum: Decimal | None = None) -> int | None:
    """Level 1-5 of a raw score under the rule (None without a rule). ``maximum`` is the
    highest raw score of the items this person was given (needed on the percent scale)."""
    if not rule:
        return None
    scale = scale_of(rule)
    level = 1
    for threshold, step in thresholds(rule):
        if _at_least(raw, maximum, threshold, scale):
            level = step if "norm_table" in rule else level + 1
    return level


# -- what a form can reach -------------------------------------------------------------------


@dataclass(frozen=True)
class ItemScores:
    """What one item can score: every value a response (or a blank) can give."""

    values: frozenset[Decimal]

    @property
    def maximum(self) -> Decimal:
        return max(self.values)


def possible_scores(kind: str, options: Sequence[tuple[bool, Decimal | None]],
                    scoring: Mapping[str, Any] | None,
                    single_points: tuple[Decimal, Decimal]) -> ItemScores:
    """Every score an item can give (a blank scores 0), by the rules of
    ``app.scoring.engine.item_score``; ``options`` are (is key, weight or points) pairs and
    ``single_points`` the bank's (correct, wrong) points. A test keeps the two in step."""
    rules = scoring or {}
    values = {ZERO}
    weights = [_dec(w) if w is not None else None for _, w in options]
    if kind == "single":
        correct, wrong = single_points
        values |= {correct, wrong} if any(key for key, _ in options) else {wrong}
    elif kind == "weighted":
        values |= {w for w in weights if w is not None}
    elif kind == "likert":
        scale = [w if w is not None else Decimal(i + 1) for i, w in enumerate(weights)]
        if rules.get("reverse"):
            low, high = min(scale), max(scale)
            scale = [low + high - w for w in scale]
        values |= set(scale)
    elif kind == "multiple":
        points = [w or ZERO for w in weights]
        low = _dec(rules.get("min", 0))
        high = (_dec(rules["max"]) if rules.get("max") is not None
                else sum((p for p in points if p > 0), ZERO))
        if rules.get("exact"):  # all or nothing
            values |= {low, high} if any(key for key, _ in options) else {low}
        else:
            for size in range(1, len(points) + 1):
                for chosen in combinations(points, size):
                    values.add(min(max(sum(chosen, ZERO), low), high))
    else:
        raise ValueError(f"unknown item kind {kind!r}")
    return ItemScores(frozenset(values))


MAX_TOTALS = 20_000  # beyond this many distinct totals only the maximum is checked


def possible_totals(items: Iterable[ItemScores]) -> frozenset[Decimal] | None:
    """Every raw total a set of items can give together (None when there are too many to
    list: items with fine-grained partial credit)."""
    totals = {ZERO}
    for item in items:
        totals = {t + v for t in totals for v in item.values}
        if len(totals) > MAX_TOTALS:
            return None
    return frozenset(totals)


@dataclass(frozen=True)
class Unreachable:
    """A level that no answer can reach on a form: why, on the rule's scale."""

    level: int
    low: Decimal  # the level's lowest score on the rule's scale
    high: Decimal | None  # the next level's lowest score (None for the top level)
    maximum: Decimal  # the form's highest raw score for the construct


def unreachable_levels(rule: Mapping[str, Any], items: Sequence[ItemScores]
                       ) -> list[Unreachable]:
    """The levels of the rule that no combination of answers to ``items`` reaches."""
    maximum = sum((i.maximum for i in items), ZERO)
    scale = scale_of(rule)
    totals = possible_totals(items)
    if totals is None:  # too many totals to list: every value between the extremes counts
        lowest = sum((min(i.values) for i in items), ZERO)
        reached = {level_for(lowest, rule, maximum), level_for(maximum, rule, maximum)}
        bounds = [t for t, _ in thresholds(rule)]
        for threshold in bounds:
            raw = threshold * maximum / HUNDRED if scale == PERCENT else threshold
            if lowest <= raw <= maximum:
                reached.add(level_for(raw, rule, maximum))
    else:
        reached = {level_for(total, rule, maximum) for total in totals}
    steps = [(ZERO if scale == PERCENT else None, 1)] + thresholds(rule)
    out = []
    for index, (low, level) in enumerate(steps):
        if level in reached or level in {lv for _, lv in steps[index + 1:]}:
            continue
        high = steps[index + 1][0] if index + 1 < len(steps) else None
        out.append(Unreachable(level, low if low is not None else ZERO, high, maximum))
    return out
