"""Scoring as plain functions over plain data (no database): item scores, construct levels,
bands, job-person match and categories, the nine-box, and scale reliability.

Every convention is the default of the assessment domain and can be overridden by the caller
(bank scoring rules, agency settings). Decimal arithmetic keeps scores exact: a participant's
total must not differ by a rounding artefact between two runs or two machines.

Rounding: a value that is not a sum of item scores (a percent, the potensi score, the JPM, the
combined JPM) is computed exactly (as a ``Fraction``) and rounded once, at the end, to two
decimals, half to even (:func:`round2`). A value computed from other values uses them
unrounded (the ``*_exact`` functions), never their two-decimal copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from app.bank import levels

ZERO = Decimal(0)
HUNDRED = Fraction(100)


def round2(value: Fraction | Decimal | int) -> Decimal:
    """The value rounded to two decimals, exactly, half to even (12.345 -> 12.34, 12.355 ->
    12.36, 12.3451 -> 12.35): the rounding Python's Decimal applies by default, which every
    stored percent and JPM has always used, made explicit so no context setting can change it."""
    return Decimal(round(Fraction(value) * 100)).scaleb(-2)


@dataclass(frozen=True)
class ScoredOption:
    id: int
    is_key: bool = False
    weight: Decimal | None = None  # weight (weighted, likert) or points (multiple)


@dataclass(frozen=True)
class ScoredItem:
    kind: str  # single, weighted, multiple, likert
    options: Sequence[ScoredOption]
    scoring: Mapping[str, Any] | None = None  # multiple: min/max; likert: reverse

    @property
    def rules(self) -> Mapping[str, Any]:
        return self.scoring or {}


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def single_points(rules: Mapping[str, Any] | None) -> tuple[Decimal, Decimal]:
    """(correct, wrong) points for keyed items; the national CAT convention 5 / 0."""
    points = ((rules or {}).get("points") or {}).get("single") or {}
    return _dec(points.get("correct", 5)), _dec(points.get("wrong", 0))


def _likert_weights(item: ScoredItem) -> list[Decimal]:
    weights = [o.weight if o.weight is not None else Decimal(i + 1)
               for i, o in enumerate(item.options)]
    if item.rules.get("reverse"):
        # Reverse keying mirrors the scale: lowest <-> highest, whatever the weights are.
        low, high = min(weights), max(weights)
        weights = [low + high - w for w in weights]
    return weights


def item_score(item: ScoredItem, response: Any, bank_rules: Mapping[str, Any] | None = None
               ) -> Decimal:
    """The score of one response. A blank (None or []) scores 0 for every kind."""
    if response in (None, []):
        return ZERO
    by_id = {o.id: o for o in item.options}
    if item.kind == "single":
        correct, wrong = single_points(bank_rules)
        return correct if by_id.get(response) and by_id[response].is_key else wrong
    if item.kind == "weighted":
        chosen = by_id.get(response)
        return _dec(chosen.weight) if chosen and chosen.weight is not None else ZERO
    if item.kind == "likert":
        weights = dict(zip((o.id for o in item.options), _likert_weights(item), strict=True))
        return weights.get(response, ZERO)
    if item.kind == "multiple":
        low = _dec(item.rules.get("min", 0))
        high = _dec(item.rules["max"]) if item.rules.get("max") is not None else item_max(item)
        if item.rules.get("exact"):
            # All or nothing (QTI match_correct): full points only for exactly the keyed set.
            ticked = {r for r in response if r in by_id}
            return high if ticked == {o.id for o in item.options if o.is_key} else low
        total = sum((_dec(by_id[r].weight or 0) for r in response if r in by_id), ZERO)
        return min(max(total, low), high)
    raise ValueError(f"unknown item kind {item.kind!r}")


def item_max(item: ScoredItem, bank_rules: Mapping[str, Any] | None = None) -> Decimal:
    """The highest score the item can give."""
    if item.kind == "single":
        return single_points(bank_rules)[0]
    if item.kind == "weighted":
        return max((_dec(o.weight) for o in item.options if o.weight is not None), default=ZERO)
    if item.kind == "likert":
        return max(_likert_weights(item))
    if item.kind == "multiple":
        if item.rules.get("max") is not None:
            return _dec(item.rules["max"])
        return sum((_dec(o.weight) for o in item.options
                    if o.weight is not None and o.weight > 0), ZERO)
    raise ValueError(f"unknown item kind {item.kind!r}")


def percent_exact(raw: Decimal, maximum: Decimal) -> Fraction:
    """Raw score as a percentage of the maximum, unrounded (0 when nothing was possible)."""
    if maximum <= 0:
        return Fraction(0)
    return Fraction(raw) * HUNDRED / Fraction(maximum)


def percent(raw: Decimal, maximum: Decimal) -> Decimal:
    """Raw score as a percentage of the maximum, two decimals (0 when nothing was possible)."""
    return round2(percent_exact(raw, maximum))


def level_for(raw: Decimal, rule: Mapping[str, Any] | None,
              maximum: Decimal | None = None) -> int | None:
    """Level 1-5 from the bank's rule for the construct: ``cut_scores`` (the lowest score of
    levels 2-5) or a ``norm_table`` of {min_raw, level} rows ({min_percent, level} on the
    percent scale). With ``scale: percent`` the thresholds are percents of ``maximum``, the
    highest raw score of the items this person was given (exact: raw x 100 >= cut x maximum).
    None without a rule. The rule's arithmetic is in ``app/bank/levels.py``, which the
    blueprint check shares."""
    return levels.level_for(raw, rule, maximum)


def potensi_band(score_0_100: Decimal, bands: tuple[Decimal, Decimal] = (Decimal(60),
                                                                         Decimal(80))) -> str:
    """Rendah below the first bound, Menengah up to the second, Tinggi from the second."""
    low, high = bands
    if score_0_100 >= high:
        return "Tinggi"
    return "Menengah" if score_0_100 >= low else "Rendah"


def gaps(achieved: Mapping[str, int], required: Mapping[str, int]) -> dict[str, int]:
    """Achieved minus required level per competency (negative: a development area)."""
    return {c: achieved.get(c, 0) - level for c, level in required.items()}


def jpm_exact(achieved: Mapping[str, int], required: Mapping[str, int], *, cap: bool = True
              ) -> Fraction:
    """Job-person match, unrounded: sum of achieved levels / sum of required levels x 100 %,
    over the competencies the job requires; capped at 100 when ``cap``."""
    needed = sum(required.values())
    if needed == 0:
        return Fraction(0)
    value = Fraction(sum(min(achieved.get(c, 0), 5) for c in required)) * HUNDRED / needed
    return min(value, HUNDRED) if cap else value


def jpm(achieved: Mapping[str, int], required: Mapping[str, int], *, cap: bool = True
        ) -> Decimal:
    """:func:`jpm_exact` rounded to two decimals: the JPM that is stored and shown."""
    return round2(jpm_exact(achieved, required, cap=cap))


CATEGORIES = {
    # purpose: [(lowest JPM, label), ...] from the top
    "mapping": [(Decimal(90), "Optimal"), (Decimal(78), "Cukup Optimal"),
                (ZERO, "Kurang Optimal")],
    "placement": [(Decimal(80), "Memenuhi Syarat"), (Decimal(68), "Masih Memenuhi Syarat"),
                  (ZERO, "Kurang Memenuhi Syarat")],
}


def category(jpm_value: Decimal, purpose: str = "mapping") -> str:
    """The category of a JPM for the purpose of the assessment (boundaries belong upward:
    exactly 90 is Optimal, exactly 78 Cukup Optimal; 80 is MS, 68 MMS)."""
    for lowest, label in CATEGORIES[purpose]:
        if jpm_value >= lowest:
            return label
    return CATEGORIES[purpose][-1][1]


# Nine-box: (performance, potential) -> box, as the talent-management table numbers them.
NINE_BOX = {
    ("below", "low"): 1, ("as_expected", "low"): 2, ("below", "medium"): 3,
    ("above", "low"): 4, ("as_expected", "medium"): 5, ("below", "high"): 6,
    ("above", "medium"): 7, ("as_expected", "high"): 8, ("above", "high"): 9,
}


def nine_box(performance: str, potential: str) -> int:
    return NINE_BOX[(performance, potential)]


# Potensi band -> the nine-box's potential axis.
POTENTIAL_OF_BAND = {"Rendah": "low", "Menengah": "medium", "Tinggi": "high"}
PERFORMANCE_LEVELS = ("below", "as_expected", "above")


def performance_from_category(label: str, purpose: str = "mapping") -> str:
    """For agencies that put kompetensi on the performance axis: the top category of the
    purpose is "above", the middle "as_expected", the lowest "below"."""
    labels = [name for _, name in CATEGORIES[purpose]]
    return ("above", "as_expected", "below")[labels.index(label)]


def performance_from_score(score: Decimal, bands: tuple[Decimal, Decimal] = (Decimal(76),
                                                                            Decimal(91))) -> str:
    """A numeric kinerja score (0-100) on the three-level axis: below the first bound "below",
    from the second "above" (defaults: the SKP predicates Baik from 76, Sangat Baik from 91)."""
    low, high = bands
    if score >= high:
        return "above"
    return "as_expected" if score >= low else "below"


def mean_percent_exact(parts: Sequence[tuple[Decimal, Decimal]]) -> Fraction | None:
    """The unweighted mean of raw/max percentages, unrounded: every part counts the same,
    however many items measured it. None without parts."""
    if not parts:
        return None
    total = sum((percent_exact(raw, maximum) for raw, maximum in parts), Fraction(0))
    return total / len(parts)


def mean_percent(parts: Sequence[tuple[Decimal, Decimal]]) -> Decimal | None:
    """:func:`mean_percent_exact` rounded once to two decimals. None without parts."""
    value = mean_percent_exact(parts)
    return round2(value) if value is not None else None


def combined_jpm(potensi_score: Fraction | Decimal, kompetensi_jpm: Fraction | Decimal,
                 weights: tuple[Decimal | int, Decimal | int]) -> Decimal:
    """Weighted mean of the potensi score and the kompetensi JPM, both on 0-100, with the
    (potensi, kompetensi) weights of the job group; rounded once, to two decimals. Give it the
    unrounded values (:func:`mean_percent_exact`, :func:`jpm_exact`): rounding them first can
    move the second decimal (74.44 and 83.33 at 40/60 give 79.77; 74.444... and 83.333...
    give 79.78)."""
    w_potensi, w_kompetensi = (Fraction(_dec(w)) for w in weights)
    if w_potensi + w_kompetensi <= 0:
        raise ValueError("combined JPM weights must not both be zero")
    value = ((Fraction(potensi_score) * w_potensi + Fraction(kompetensi_jpm) * w_kompetensi)
             / (w_potensi + w_kompetensi))
    return round2(value)


def strengths_and_development(gap_by_competency: Mapping[str, int]
                              ) -> tuple[list[str], list[str]]:
    """Strengths (gap >= 0, largest first) and development areas (gap < 0, largest shortfall
    first); ties in name order so a report never reorders between runs."""
    strengths = sorted((c for c, g in gap_by_competency.items() if g >= 0),
                       key=lambda c: (-gap_by_competency[c], c))
    development = sorted((c for c, g in gap_by_competency.items() if g < 0),
                         key=lambda c: (gap_by_competency[c], c))
    return strengths, development


def _population_variance(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


def cronbach_alpha(matrix: Sequence[Sequence[float]]) -> float | None:
    """Cronbach's alpha = k/(k-1) * (1 - sum of item variances / variance of totals), rows =
    persons, columns = items, population variances (Cronbach 1951). For 0/1 items this is
    KR-20 (Kuder & Richardson 1937). None when it is undefined (k < 2, no total variance)."""
    if not matrix or len(matrix[0]) < 2:
        return None
    k = len(matrix[0])
    totals = [sum(row) for row in matrix]
    total_variance = _population_variance(totals)
    if total_variance == 0:
        return None
    item_variance = sum(_population_variance([row[j] for row in matrix]) for j in range(k))
    return k / (k - 1) * (1 - item_variance / total_variance)


def kr20(matrix: Sequence[Sequence[int]]) -> float | None:
    """KR-20 = k/(k-1) * (1 - sum p*q / variance of totals) for dichotomous (0/1) items."""
    if not matrix or len(matrix[0]) < 2:
        return None
    k, n = len(matrix[0]), len(matrix)
    totals = [sum(row) for row in matrix]
    total_variance = _population_variance(totals)
    if total_variance == 0:
        return None
    pq = 0.0
    for j in range(k):
        p = sum(row[j] for row in matrix) / n
        pq += p * (1 - p)
    return k / (k - 1) * (1 - pq / total_variance)
