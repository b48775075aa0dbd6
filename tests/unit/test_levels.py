"""Level rules on the raw and the percent scale (app/bank/levels.py): exact boundaries, the
scores an item can give (in step with the scoring engine), and the levels a form can reach."""

from __future__ import annotations

from decimal import Decimal as D
from itertools import combinations

import pytest

from app.bank import levels
from app.scoring.engine import ScoredItem, ScoredOption, item_score, level_for

PERCENT = {"scale": "percent", "cut_scores": [20, 40, 60, 80]}


def test_percent_cut_scores_compare_raw_over_maximum_exactly():
    # 15 items of 5 points: maximum 75. 20 % of 75 = 15, 40 % = 30, 60 % = 45, 80 % = 60.
    raws = [0, 14.99, 15, 29.99, 30, 44.99, 45, 59.99, 60, 75]
    assert [level_for(D(str(r)), PERCENT, D(75)) for r in raws] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # 1/3 of the maximum is 33.33... %: below a cut at 33.34, at or above one at 33.33.
    assert level_for(D(1), {"scale": "percent", "cut_scores": [33.34, 50, 60, 70]}, D(3)) == 1
    assert level_for(D(1), {"scale": "percent", "cut_scores": [33.33, 50, 60, 70]}, D(3)) == 2
    # The same percent on another number of items gives the same level.
    assert level_for(D(12), PERCENT, D(20)) == level_for(D(21), PERCENT, D(35)) == 4


def test_percent_norm_table_and_the_raw_scale_by_default():
    norm = {"scale": "percent", "norm_table": [{"min_percent": 0, "level": 1},
                                               {"min_percent": 50, "level": 3},
                                               {"min_percent": 90, "level": 5}]}
    assert [level_for(D(r), norm, D(10)) for r in (0, 4, 5, 8, 9, 10)] == [1, 1, 3, 3, 5, 5]
    raw = {"cut_scores": [12, 17, 22, 27]}  # no scale: raw, the maximum is not needed
    assert [level_for(D(r), raw) for r in (11, 12, 27)] == [1, 2, 5]
    assert level_for(D(0), PERCENT, D(0)) == 1  # nothing could be scored: 0 %
    with pytest.raises(ValueError, match="maximum"):
        level_for(D(3), PERCENT)


def responses(item: ScoredItem) -> list:
    ids = [o.id for o in item.options]
    if item.kind == "multiple":
        return [None] + [list(c) for n in range(1, len(ids) + 1) for c in combinations(ids, n)]
    return [None, *ids]


ITEMS = [
    ScoredItem("single", (ScoredOption(1, True), ScoredOption(2))),
    ScoredItem("weighted", (ScoredOption(1, weight=D(5)), ScoredOption(2, weight=D(2)))),
    ScoredItem("likert", tuple(ScoredOption(i) for i in range(1, 6)), {"reverse": True}),
    ScoredItem("likert", (ScoredOption(1, weight=D(0)), ScoredOption(2, weight=D(4)))),
    ScoredItem("multiple", (ScoredOption(1, weight=D("2.5")), ScoredOption(2, weight=D("2.5")),
                            ScoredOption(3, weight=D(-1))), {"min": 0, "max": 5}),
    ScoredItem("multiple", (ScoredOption(1, weight=D(3)), ScoredOption(2, weight=D(-4))),
               {"min": -2}),
]


@pytest.mark.parametrize("item", ITEMS, ids=lambda i: i.kind)
@pytest.mark.parametrize("rules", [None, {"points": {"single": {"correct": 4, "wrong": -1}}}])
def test_possible_scores_are_what_the_engine_gives(item, rules):
    points = ((rules or {}).get("points") or {}).get("single") or {}
    single = (D(points.get("correct", 5)), D(points.get("wrong", 0)))
    found = levels.possible_scores(item.kind, [(o.is_key, o.weight) for o in item.options],
                                   item.scoring, single)
    assert found.values == {item_score(item, r, rules) for r in responses(item)}


def five_points(count: int) -> list[levels.ItemScores]:
    return [levels.ItemScores(frozenset({D(0), D(5)}))] * count


def test_unreachable_levels_on_both_scales():
    raw = {"cut_scores": [30, 50, 70, 85]}  # written for 20 items
    assert levels.unreachable_levels(raw, five_points(20)) == []
    [top] = levels.unreachable_levels(raw, five_points(15))
    assert (top.level, top.low, top.maximum) == (5, D(85), D(75))
    assert levels.unreachable_levels(PERCENT, five_points(15)) == []
    # 3 items: 0, 33.3, 66.7, 100 %: level 3 (40 to below 60 %) holds no score.
    [gap] = levels.unreachable_levels(PERCENT, five_points(3))
    assert (gap.level, gap.low, gap.high) == (3, D(40), D(60))
    # A norm table that gives only levels 1 and 2 asks for nothing more.
    two = {"norm_table": [{"min_raw": 0, "level": 1}, {"min_raw": 5, "level": 2}]}
    assert levels.unreachable_levels(two, five_points(1)) == []
