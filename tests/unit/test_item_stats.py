"""Item analysis (app.analysis.stats) against published and hand-computed values.

Published worked example: K. L. Wuensch, "The Kuder-Richardson 20" (East Carolina University,
StatHelp, https://core.ecu.edu/wuenschk/StatHelp/KR20.txt): ten students, a ten-item quiz,
0/1 scores. The page tabulates p = .7 .7 .6 .7 .6 .8 .7 .7 .5 .6, p*q (sum 2.18) and the
variance of the totals, 5.84 (population form), which gives
KR-20 = 10/9 * (1 - 2.18 / 5.84) = 0.69635; the page also notes that alpha on 0/1 data is the
same number. The tests reproduce the table's numbers from its raw data.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from app.analysis.stats import (
    FLAG_NEGATIVE_R,
    FLAG_TOO_EASY,
    FLAG_TOO_HARD,
    FLAG_UNUSED_DISTRACTOR,
    TOO_EASY,
    TOO_HARD,
    ItemSpec,
    OptionSpec,
    analyse,
    pearson,
    sort_items,
)
from app.scoring.engine import cronbach_alpha, kr20

# Wuensch's table, students A-J (rows) by items 1-10 (columns).
WUENSCH = [
    [1, 1, 1, 1, 1, 1, 0, 1, 1, 0],  # A  8
    [1, 0, 1, 1, 0, 1, 1, 1, 0, 1],  # B  7
    [1, 1, 1, 1, 0, 1, 1, 0, 0, 1],  # C  7
    [0, 0, 1, 0, 0, 0, 1, 0, 0, 0],  # D  2
    [0, 0, 0, 0, 0, 1, 0, 0, 1, 0],  # E  2
    [1, 1, 1, 0, 1, 1, 1, 1, 1, 1],  # F  9
    [1, 1, 0, 1, 1, 1, 0, 1, 1, 1],  # G  8
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 1],  # H  9
    [0, 1, 0, 1, 1, 1, 1, 1, 0, 1],  # I  7
    [1, 1, 0, 1, 1, 0, 1, 1, 1, 0],  # J  7
]
WUENSCH_P = [.7, .7, .6, .7, .6, .8, .7, .7, .5, .6]
WUENSCH_KR20 = 10 / 9 * (1 - 2.18 / 5.84)  # 0.696347


def keyed_items(k, scale="potensi.numerik", points=1.0):
    return [ItemSpec(f"Q{j + 1:02d}", scale, "single", points) for j in range(k)]


def test_wuensch_p_values_variance_and_kr20():
    assert [sum(row) for row in WUENSCH] == [8, 7, 7, 2, 2, 9, 8, 9, 7, 7]
    result = analyse(keyed_items(10), WUENSCH)
    assert [round(s.p, 2) for s in result.items] == WUENSCH_P
    assert sum(s.p * (1 - s.p) for s in result.items) == pytest.approx(2.18)
    (scale,) = result.scales
    assert (scale.method, scale.n, scale.items) == ("KR-20", 10, 10)
    assert scale.mean == pytest.approx(6.6)
    assert scale.sd ** 2 == pytest.approx(5.84)
    assert scale.reliability == pytest.approx(WUENSCH_KR20) == pytest.approx(0.696347, abs=1e-6)
    # SEM = SD * sqrt(1 - r) = sqrt(5.84) * sqrt(1 - 0.696347) = 2.41661 * 0.551047
    assert scale.sem == pytest.approx(1.33167, abs=1e-5)
    # The engine's functions agree, and alpha on 0/1 data is KR-20 (as the page points out).
    assert kr20(WUENSCH) == pytest.approx(WUENSCH_KR20)
    assert cronbach_alpha(WUENSCH) == pytest.approx(WUENSCH_KR20)


def test_kr20_is_used_on_points_not_just_ones():
    """Keyed items worth 5 points (the national CAT convention) give the same KR-20."""
    five = [[5 * v for v in row] for row in WUENSCH]
    (scale,) = analyse(keyed_items(10, points=5.0), five).scales
    assert scale.method == "KR-20" and scale.reliability == pytest.approx(WUENSCH_KR20)
    assert scale.sd == pytest.approx(5 * math.sqrt(5.84))


def test_corrected_point_biserial_by_hand():
    result = analyse(keyed_items(10), WUENSCH)
    # Item 1. Rest scores (total - item 1): A7 B6 C6 D2 E2 F8 G7 H8 I7 J6, mean 5.9,
    # population variance 42.9 / 10 = 4.29. Right (A B C F G H J): mean 48/7 = 6.857;
    # wrong (D E I): mean 11/3 = 3.667. r_pb = (6.857 - 3.667) / sqrt(4.29) * sqrt(.7 * .3)
    # = 3.1905 / 2.0712 * 0.45826 = 0.7059.
    assert result.items[0].r == pytest.approx(0.70590, abs=5e-5)
    # Item 9. Rest: A7 B7 C7 D2 E1 F8 G7 H9 I7 J6, mean 6.1, variance 58.9 / 10 = 5.89.
    # Right (A E F G J): 29/5 = 5.8; wrong (B C D H I): 32/5 = 6.4.
    # r_pb = (5.8 - 6.4) / sqrt(5.89) * sqrt(.5 * .5) = -0.6 / 2.42693 * 0.5 = -0.12361.
    assert result.items[8].r == pytest.approx(-0.12361, abs=5e-5)
    assert FLAG_NEGATIVE_R in result.items[8].flags
    assert FLAG_NEGATIVE_R not in result.items[0].flags


def test_cronbach_alpha_by_hand_and_by_hoyt_anova():
    likert = [[4, 5, 4, 5], [3, 3, 4, 3], [2, 2, 1, 2], [5, 4, 5, 4], [3, 4, 3, 3], [1, 2, 2, 1]]
    items = [ItemSpec(f"L{j}", "potensi.motivasi_komitmen", "likert", 5.0) for j in range(4)]
    (scale,) = analyse(items, likert).scales
    # Item variances (population): 10/6, 11/9, 65/36, 10/6 -> sum 229/36 = 6.36111.
    # Totals 18 13 7 18 13 6: mean 12.5, variance 133.5 / 6 = 22.25.
    # alpha = 4/3 * (1 - 6.36111 / 22.25) = 0.952143.
    assert scale.method == "alpha"
    assert scale.reliability == pytest.approx(4 / 3 * (1 - (229 / 36) / 22.25))
    assert scale.reliability == pytest.approx(0.952143, abs=1e-6)
    # Hoyt (1941): reliability = 1 - MS(persons x items) / MS(persons), which is alpha.
    n, k = len(likert), 4
    grand = sum(map(sum, likert)) / (n * k)
    row_means = [sum(r) / k for r in likert]
    col_means = [sum(r[j] for r in likert) / n for j in range(k)]
    ss_persons = k * sum((m - grand) ** 2 for m in row_means)
    ss_items = n * sum((m - grand) ** 2 for m in col_means)
    ss_total = sum((v - grand) ** 2 for r in likert for v in r)
    ms_persons = ss_persons / (n - 1)
    ms_residual = (ss_total - ss_persons - ss_items) / ((n - 1) * (k - 1))
    assert scale.reliability == pytest.approx(1 - ms_residual / ms_persons)
    assert scale.sem == pytest.approx(math.sqrt(22.25) * math.sqrt(1 - 0.952143), abs=1e-5)


def pooled_alpha_by_hand(rows):
    """alpha = k c / (v + (k - 1) c) from the item variances and pairwise covariances over the
    persons who had the items (docs: "alpha of the average form"), written out plainly."""
    from statistics import mean

    k_items = len(rows[0])
    had = [r for r in rows if any(x is not None for x in r)]
    k = mean(sum(x is not None for x in r) for r in had)

    def cov(i, j):
        pairs = [(r[i], r[j]) for r in rows if r[i] is not None and r[j] is not None]
        mi, mj = mean(a for a, _ in pairs), mean(b for _, b in pairs)
        return mean((a - mi) * (b - mj) for a, b in pairs), len(pairs)

    v = mean(cov(i, i)[0] for i in range(k_items))
    c = mean(cv for i in range(k_items) for j in range(i + 1, k_items)
             for cv, n in [cov(i, j)] if n >= 3)
    return k * c / (v + (k - 1) * c), k


def test_not_presented_items_are_left_out():
    """None = not on the form: p and r use the persons who had the item. The people had
    different forms, so the reliability is the pooled alpha (KR-20) of the average form, over
    everyone who had an item of the scale."""
    scores = [[1, 1, None], [1, 0, 0], [0, 0, 1], [1, 1, 1], [0, None, 0]]
    result = analyse(keyed_items(3), scores)
    first, second, third = result.items
    assert (first.n, first.p) == (5, pytest.approx(0.6))
    assert (second.n, second.p) == (4, pytest.approx(0.5))
    assert (third.n, third.p) == (4, pytest.approx(0.5))
    (scale,) = result.scales
    alpha, k = pooled_alpha_by_hand(scores)
    assert (scale.method, scale.n, scale.items_per_person) == ("pooled KR-20", 5, k)
    assert k == pytest.approx(2.6) and scale.reliability == pytest.approx(alpha)
    # Everyone with every item: KR-20 over the complete rows, as before.
    complete = [[1, 0, 0], [0, 0, 1], [1, 1, 1]]
    assert analyse(keyed_items(3), complete).scales[0].reliability == pytest.approx(
        kr20(complete))


def test_difficulty_flags_use_the_domain_thresholds():
    assert (TOO_EASY, TOO_HARD) == (0.95, 0.10)  # docs/domain.md: p > .95, p < .1
    n = 40
    easy = [1] * n  # p = 1.0
    hard = [1] + [0] * (n - 1)  # p = .025
    edge = [1] * 38 + [0] * 2  # p = .95 exactly: not flagged (the rule is p > .95)
    low_edge = [1] * 4 + [0] * 36  # p = .10 exactly: not flagged
    rows = [[easy[i], hard[i], edge[i], low_edge[i]] for i in range(n)]
    stats = analyse(keyed_items(4), rows).items
    assert FLAG_TOO_EASY in stats[0].flags and stats[0].r is None  # no variance, no r
    assert FLAG_TOO_HARD in stats[1].flags
    assert FLAG_TOO_EASY not in stats[2].flags and FLAG_TOO_HARD not in stats[3].flags


def test_weighted_items_use_mean_weight_over_max():
    items = [ItemSpec("SJT-1", "kompetensi.integritas", "weighted", 5.0,
                      (OptionSpec("A"), OptionSpec("B", True), OptionSpec("C", True))),
             ItemSpec("SJT-2", "kompetensi.integritas", "weighted", 4.0,
                      (OptionSpec("A"), OptionSpec("B", True)))]
    scores = [[5, 4], [3, 4], [5, 1], [1, None]]
    choices = [["A", "A"], ["B", "A"], ["A", "B"], ["C", None]]
    result = analyse(items, scores, choices)
    first, second = result.items
    assert first.mean == pytest.approx(3.5) and first.p == pytest.approx(0.7)
    assert [(o.label, o.count) for o in first.options] == [("A", 2), ("B", 1), ("C", 1)]
    assert first.options[0].proportion == pytest.approx(0.5)
    assert second.p == pytest.approx(9 / 12)
    (scale,) = result.scales
    alpha, k = pooled_alpha_by_hand(scores)
    assert (scale.method, scale.n) == ("pooled alpha", 4)
    assert k == pytest.approx(1.75) and scale.reliability == pytest.approx(alpha)


def test_option_frequencies_blanks_and_unused_distractors():
    items = [ItemSpec("NUM-1", "potensi.numerik", "single", 5.0,
                      (OptionSpec("A", True), OptionSpec("B"), OptionSpec("C", True),
                       OptionSpec("D", True)))]
    scores = [[5], [5], [0], [0], [None]]
    # Per person, per item: a label list, a bare label, or empty for a blank; the fifth
    # person had no such item, so their choice is ignored.
    choices = [[["B"]], ["B"], [["A"]], [[]], [["C"]]]
    (item,) = analyse(items, scores, choices).items
    assert {o.label: o.count for o in item.options} == {"A": 1, "B": 2, "C": 0, "D": 0}
    assert item.blanks == 1 and item.n == 4
    assert [o.label for o in item.options if o.unused] == ["C", "D"]
    assert FLAG_UNUSED_DISTRACTOR in item.flags
    assert not item.options[1].unused  # the key is never an "unused distractor"


def test_multiple_response_counts_every_chosen_option():
    items = [ItemSpec("MUL-1", "potensi.verbal", "multiple", 5.0,
                      (OptionSpec("A"), OptionSpec("B"), OptionSpec("C", True)))]
    (item,) = analyse(items, [[5], [2.5], [0]], [[["A", "B"]], [["A"]], [["C"]]]).items
    assert [o.count for o in item.options] == [2, 1, 1] and not item.flags


def test_edges():
    empty = analyse(keyed_items(2), [])
    assert empty.persons == 0 and [s.n for s in empty.items] == [0, 0]
    assert empty.items[0].p is None and empty.scales[0].reliability is None
    one = analyse(keyed_items(1), [[1], [0]])
    assert one.scales[0].reliability is None  # a one-item scale has no internal consistency
    assert one.scales[0].mean == pytest.approx(0.5)
    same = analyse(keyed_items(2), [[1, 1], [1, 1]])
    assert same.scales[0].reliability is None and same.items[0].r is None
    with pytest.raises(ValueError):
        analyse(keyed_items(2), [[1]])


def test_scales_are_separate():
    items = keyed_items(2, "potensi.numerik") + keyed_items(2, "potensi.verbal")
    result = analyse(items, [[1, 1, 0, 1], [0, 0, 1, 1], [1, 0, 1, 0]])
    assert [s.scale for s in result.scales] == ["potensi.numerik", "potensi.verbal"]
    # Item 1's rest score is item 2 only (the other scale does not count).
    assert result.items[0].r == pytest.approx(pearson([1, 0, 1], [1, 0, 0]))


def test_sorting():
    stats = analyse(keyed_items(10), WUENSCH).items
    assert [s.code for s in sort_items(stats, "code")] == [f"Q{j:02d}" for j in range(1, 11)]
    by_p = sort_items(stats, "p")
    assert by_p[0].code == "Q09" and by_p[-1].code == "Q06"  # p .5 first, .8 last
    by_r = sort_items(stats, "r")
    assert by_r[0].code == "Q09"  # the negative discrimination first
    assert all(a.r <= b.r for a, b in pairwise(by_r))
