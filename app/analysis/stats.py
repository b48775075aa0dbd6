"""Classical item analysis after a session, as plain functions over plain data (no database).

Input: a score matrix (persons x items; ``None`` = the item was not on that person's form) and,
for choice items, the options each person chose. Output, per item: difficulty, corrected
item-total correlation, option frequencies and flags; per scale (construct): reliability,
mean, SD and standard error of measurement.

Conventions (and why):
- Difficulty is ``p = mean item score / maximum item score``. For keyed items scored 5/0 that
  is the proportion correct (the classical p-value); for weighted, Likert and partial-credit
  items it is the mean weight on the same 0-1 scale, so one set of thresholds flags both.
- Discrimination is the *corrected* item-total correlation: the Pearson correlation of the
  item score with the rest score (the person's scale total minus this item), over the persons
  who had the item. For a 0/1 item this Pearson correlation is the point-biserial
  ``r_pb = (M1 - M0) / s * sqrt(p q)`` (M1, M0: mean rest score of those right / wrong, s: SD
  of the rest score, population form). Leaving the item out of the total removes the
  item's correlation with itself, which inflates r on short scales (Henrysson 1963).
- Reliability is KR-20 when every item of the scale is keyed (0/1 after dividing by the
  points; Kuder & Richardson 1937) and Cronbach's alpha otherwise (Cronbach 1951), both from
  :mod:`app.scoring.engine`, over the persons who had every item of the scale (a random form
  that gives people different items leaves fewer complete rows; the count is reported).
- Mean and SD are of the scale total over the same complete rows, with the population
  variance (divide by N) as in the KR-20 / alpha formulas, and
  ``SEM = SD * sqrt(1 - reliability)`` (e.g. Crocker & Algina 1986, ch. 6).
- When the forms are drawn from a pool, nobody may have every item of the scale. Then:
  - where the scale's items carry IRT parameters and every person has an EAP estimate, the
    **marginal reliability** of the estimates, ``var(theta) / (var(theta) + mean(SE^2))``
    (population variance; e.g. du Toit 2003, Brown & Croudace 2015), with mean, SD and
    ``SEM = sqrt(mean(SE^2))`` on the theta scale (method "marginal");
  - otherwise **alpha (KR-20 for keyed items) of the average form**: Cronbach's alpha of a
    form of ``k`` items whose variances average ``v`` and covariances average ``c``,
    ``alpha = k c / (v + (k - 1) c)``, with ``k`` the mean number of the scale's items a
    person had, ``v`` the mean item variance and ``c`` the mean covariance of every pair of
    items over the persons who had both (pairs with fewer than 3 such persons are left out);
    mean and SD of the totals people got, and ``SEM = sqrt(k v + k (k - 1) c) *
    sqrt(1 - alpha)`` on the raw scale of that average form (method "pooled alpha" or
    "pooled KR-20"; for keyed items the variances are of the 0/1 scores).

The flag thresholds are the assessment domain's (docs/domain.md, "Item analysis after a session").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.scoring.engine import cronbach_alpha, kr20

TOO_EASY = 0.95  # flag when p > this
TOO_HARD = 0.10  # flag when p < this
MIN_DISCRIMINATION = 0.0  # flag when the corrected item-total r < this

FLAG_TOO_EASY = "too_easy"
FLAG_TOO_HARD = "too_hard"
FLAG_NEGATIVE_R = "negative_r"
FLAG_UNUSED_DISTRACTOR = "unused_distractor"
FLAGS = (FLAG_TOO_EASY, FLAG_TOO_HARD, FLAG_NEGATIVE_R, FLAG_UNUSED_DISTRACTOR)

KEYED = "single"  # the item kind that is dichotomous (right / wrong)


@dataclass(frozen=True)
class OptionSpec:
    label: str
    # A distractor is an option meant to attract the weaker taker: a keyed item's wrong
    # options, a weighted item's options below the top weight. Likert categories are not.
    distractor: bool = False


@dataclass(frozen=True)
class ItemSpec:
    code: str
    scale: str  # the construct the item adds to
    kind: str  # single, weighted, multiple, likert
    max_score: float
    options: tuple[OptionSpec, ...] = ()


@dataclass(frozen=True)
class OptionStat:
    label: str
    count: int
    proportion: float | None  # of the persons who had the item
    distractor: bool
    unused: bool  # a distractor that nobody chose


@dataclass(frozen=True)
class ItemStat:
    code: str
    scale: str
    kind: str
    n: int  # persons who had the item
    mean: float | None  # mean item score
    max_score: float
    p: float | None  # mean / max (proportion correct for keyed items)
    r: float | None  # corrected item-total correlation; None when undefined
    blanks: int
    options: tuple[OptionStat, ...]
    flags: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True)
class ScaleStat:
    scale: str
    items: int
    n: int  # persons counted: with every item, or with any item (pooled), or with a theta
    # "KR-20", "alpha", "pooled KR-20", "pooled alpha", "marginal", or None when undefined
    method: str | None
    reliability: float | None
    mean: float | None
    sd: float | None
    sem: float | None
    items_per_person: float | None = None  # the pooled methods' k


@dataclass(frozen=True)
class Analysis:
    persons: int
    items: list[ItemStat] = field(default_factory=list)
    scales: list[ScaleStat] = field(default_factory=list)


Choice = Sequence[str] | None  # the labels chosen (empty or None: blank)


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None when either variable has no variance or fewer than two pairs."""
    if len(x) < 2:
        return None
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    denominator = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    # Sums of squares of a constant column can come out as 1e-30 instead of 0: no spread.
    if denominator < 1e-12:
        return None
    return float((dx * dy).sum()) / denominator


def flags_for(p: float | None, r: float | None, options: Sequence[OptionStat]) -> tuple[str, ...]:
    """The domain's flags for one item (see the module constants)."""
    found = []
    if p is not None and p > TOO_EASY:
        found.append(FLAG_TOO_EASY)
    if p is not None and p < TOO_HARD:
        found.append(FLAG_TOO_HARD)
    if r is not None and r < MIN_DISCRIMINATION:
        found.append(FLAG_NEGATIVE_R)
    if any(o.unused for o in options):
        found.append(FLAG_UNUSED_DISTRACTOR)
    return tuple(found)


def _matrix(scores: Sequence[Sequence[float | None]], k: int) -> np.ndarray:
    """Persons x items as floats with NaN for "not presented"."""
    out = np.full((len(scores), k), np.nan)
    for i, row in enumerate(scores):
        if len(row) != k:
            raise ValueError(f"person {i} has {len(row)} scores for {k} items")
        for j, value in enumerate(row):
            if value is not None:
                out[i, j] = float(value)
    return out


def _option_stats(spec: ItemSpec, choices: Sequence[Choice], n: int) -> tuple[tuple[OptionStat,
                                                                                     ...], int]:
    counts = {o.label: 0 for o in spec.options}
    blanks = 0
    for chosen in choices:
        if not chosen:
            blanks += 1
            continue
        for label in (chosen if isinstance(chosen, (list, tuple)) else [chosen]):
            if label in counts:
                counts[label] += 1
    stats = tuple(
        OptionStat(o.label, counts[o.label], counts[o.label] / n if n else None, o.distractor,
                   o.distractor and n > 0 and counts[o.label] == 0)
        for o in spec.options)
    return stats, blanks


MIN_PAIR = 3  # persons who had both items, for their covariance to count (pooled alpha)


def _sem(sd: float, reliability: float) -> float | None:
    # A negative reliability (items that work against each other) has no error-of-measurement
    # reading; SEM is reported only where 1 - reliability makes sense.
    return sd * math.sqrt(1 - reliability) if 0 <= reliability <= 1 else None


def _average_form(values: np.ndarray, mask: np.ndarray, both: np.ndarray
                  ) -> tuple[float, float] | None:
    """(v, c): the mean item variance and the mean covariance of every pair of items, each
    over the persons who had both (pairs shared by fewer than MIN_PAIR persons left out)."""
    sums = values.T @ mask  # [i, j]: sum of item i over the persons who had i and j
    products = values.T @ values
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = products / both - (sums / both) * (sums.T / both)
    size = len(both)
    variances = [cov[j, j] for j in range(size) if both[j, j] >= 2]
    pairs = [cov[i, j] for i in range(size) for j in range(i + 1, size)
             if both[i, j] >= MIN_PAIR]
    if not variances or not pairs:
        return None
    return float(np.mean(variances)), float(np.mean(pairs))


def _pooled(scale: str, columns: list[int], sub: np.ndarray, keyed: bool,
            maxima: np.ndarray) -> ScaleStat:
    """Alpha of the average form from pairwise item covariances (module docstring)."""
    present = ~np.isnan(sub)
    had = present.any(axis=1)
    n = int(had.sum())
    if n == 0:
        return ScaleStat(scale, len(columns), 0, None, None, None, None, None)
    raw = np.where(present, sub, 0.0)
    # For keyed items the covariances are of right (1) or wrong (0); a missing item stays 0.
    values = np.where(present, (raw >= maxima).astype(float), 0.0) if keyed else raw
    totals = raw[had].sum(axis=1)
    mean, sd = float(totals.mean()), float(totals.std())
    k = float(present[had].sum(axis=1).mean())
    mask = present.astype(float)
    both = mask.T @ mask  # persons who had items i and j
    moments = _average_form(values, mask, both)
    method = "pooled KR-20" if keyed else "pooled alpha"
    if k <= 1 or moments is None:
        return ScaleStat(scale, len(columns), n, None, None, mean, sd, None, k)
    v, c = moments
    if k * v + k * (k - 1) * c <= 0:
        return ScaleStat(scale, len(columns), n, None, None, mean, sd, None, k)
    reliability = k * c / (v + (k - 1) * c)
    # The SEM is in score points like the mean and SD: for keyed items the form's variance
    # comes from the points (the same moments over the raw scores), not from right/wrong.
    if keyed:
        moments = _average_form(raw, mask, both)
        if moments is None:  # the same cells as above: cannot happen, said for the reader
            return ScaleStat(scale, len(columns), n, method, reliability, mean, sd, None, k)
        v, c = moments
    form_variance = k * v + k * (k - 1) * c
    return ScaleStat(scale, len(columns), n, method, reliability, mean, sd,
                     _sem(math.sqrt(form_variance), reliability)
                     if form_variance > 0 else None, k)


def _marginal(scale: str, columns: list[int], estimates: Sequence[tuple[float, float]]
              ) -> ScaleStat:
    """Marginal reliability of EAP estimates (module docstring)."""
    thetas = np.array([t for t, _ in estimates])
    error = float(np.mean([se * se for _, se in estimates]))
    variance = float(thetas.var())
    reliability = variance / (variance + error) if variance + error > 0 else None
    return ScaleStat(scale, len(columns), len(estimates), "marginal" if reliability is not None
                     else None, reliability, float(thetas.mean()), math.sqrt(variance),
                     math.sqrt(error) if reliability is not None else None)


def _scale_stat(scale: str, columns: list[int], specs: Sequence[ItemSpec], matrix: np.ndarray,
                estimates: Sequence[tuple[float, float]] | None = None) -> ScaleStat:
    sub = matrix[:, columns]
    keyed = all(specs[j].kind == KEYED and specs[j].max_score > 0 for j in columns)
    maxima = np.array([specs[j].max_score for j in columns])
    had = ~np.isnan(sub).all(axis=1) if len(sub) else np.zeros(0, dtype=bool)
    complete = sub[~np.isnan(sub).any(axis=1)] if len(sub) else sub
    if len(complete) < int(had.sum()):  # forms from a pool: not everyone had every item
        if estimates is not None and len(estimates) == int(had.sum()) and len(estimates) > 1:
            return _marginal(scale, columns, estimates)
        return _pooled(scale, columns, sub, keyed, maxima)
    n = len(complete)
    if n == 0:
        return ScaleStat(scale, len(columns), 0, None, None, None, None, None)
    totals = complete.sum(axis=1)
    mean = float(totals.mean())
    sd = float(totals.std())  # population SD, as in the reliability formulas
    if keyed:
        # Right = full points, whatever a bank gives for wrong (0 by default, maybe negative).
        dichotomous = (complete >= maxima).astype(int).tolist()
        reliability, method = kr20(dichotomous), "KR-20"
    else:
        reliability, method = cronbach_alpha(complete.tolist()), "alpha"
    if reliability is None:
        return ScaleStat(scale, len(columns), n, None, None, mean, sd, None)
    return ScaleStat(scale, len(columns), n, method, reliability, mean, sd, _sem(sd, reliability))


def analyse(items: Sequence[ItemSpec], scores: Sequence[Sequence[float | None]],
            choices: Sequence[Sequence[Choice]] | None = None,
            estimates: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> Analysis:
    """Item and scale statistics (see the module docstring for every formula).

    ``scores[i][j]`` is person i's score on item j, ``None`` when the item was not on the
    person's form (a blank answer to a presented item is a score of 0, not None).
    ``choices[i][j]`` are the option labels person i chose on item j (one label, a list for
    multiple-response items, None or empty for a blank); it is read only where the score is
    not None. ``estimates[scale]`` are the (theta, SE) of the persons' EAP estimates on that
    scale, where its items carry IRT parameters (used when the forms differ).
    """
    k = len(items)
    matrix = _matrix(scores, k)
    presented = ~np.isnan(matrix)
    filled = np.where(presented, matrix, 0.0)
    scale_columns: dict[str, list[int]] = {}
    for j, spec in enumerate(items):
        scale_columns.setdefault(spec.scale, []).append(j)
    # Each person's total per scale over the items they had.
    scale_totals = {scale: filled[:, cols].sum(axis=1) for scale, cols in scale_columns.items()}

    item_stats = []
    for j, spec in enumerate(items):
        rows = np.flatnonzero(presented[:, j])
        n = len(rows)
        values = matrix[rows, j]
        mean = float(values.mean()) if n else None
        p = mean / spec.max_score if mean is not None and spec.max_score > 0 else None
        rest = scale_totals[spec.scale][rows] - values
        r = pearson(values, rest) if n else None
        item_choices = [choices[int(i)][j] for i in rows] if choices is not None else []
        options, blanks = _option_stats(spec, item_choices, n) if choices is not None else (
            (), 0)
        item_stats.append(ItemStat(spec.code, spec.scale, spec.kind, n, mean, spec.max_score, p,
                                   r, blanks, options, flags_for(p, r, options)))

    scale_stats = [_scale_stat(scale, cols, items, matrix, (estimates or {}).get(scale))
                   for scale, cols in sorted(scale_columns.items())]
    return Analysis(persons=len(scores), items=item_stats, scales=scale_stats)


SORTS = ("code", "p", "r")


def sort_items(items: Sequence[ItemStat], key: str = "code") -> list[ItemStat]:
    """Items by code, by difficulty (hardest first) or by discrimination (weakest first);
    undefined values go last so the page opens on the items that need a look."""
    if key == "p":
        return sorted(items, key=lambda s: (s.p is None, s.p if s.p is not None else 0, s.code))
    if key == "r":
        return sorted(items, key=lambda s: (s.r is None, s.r if s.r is not None else 0, s.code))
    return sorted(items, key=lambda s: s.code)
