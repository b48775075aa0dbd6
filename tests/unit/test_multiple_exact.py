"""Multiple-response items scored as QTI's match_correct: all or nothing. Ticking every choice,
or only part of the keyed set, scores the minimum; exactly the keyed set scores the maximum.
The possible scores the blueprint check uses agree."""

from __future__ import annotations

from decimal import Decimal

from app.bank.levels import possible_scores
from app.scoring.engine import ScoredItem, ScoredOption, item_max, item_score

EXACT = ScoredItem("multiple", (ScoredOption(1, True, Decimal(1)),
                                ScoredOption(2, False, Decimal(0)),
                                ScoredOption(3, True, Decimal(1))),
                   {"min": 0, "max": 2, "exact": True})
SUMMED = ScoredItem("multiple", EXACT.options, {"min": 0, "max": 2})


def test_all_or_nothing():
    assert item_score(EXACT, [1, 3]) == 2 and item_score(EXACT, [3, 1]) == 2
    assert item_score(EXACT, [1, 2, 3]) == 0  # every choice ticked: nothing
    assert item_score(EXACT, [1]) == 0  # half the keyed set: nothing
    assert item_score(EXACT, [2]) == 0 and item_score(EXACT, []) == 0
    assert item_max(EXACT) == 2
    # Without "exact" the points add up: ticking everything earns the full 2.
    assert item_score(SUMMED, [1, 2, 3]) == 2 and item_score(SUMMED, [1]) == 1


def test_possible_scores_agree_with_the_scorer():
    options = [(o.is_key, o.weight) for o in EXACT.options]
    exact = possible_scores("multiple", options, EXACT.rules, (Decimal(5), Decimal(0)))
    summed = possible_scores("multiple", options, SUMMED.rules, (Decimal(5), Decimal(0)))
    assert exact.values == {Decimal(0), Decimal(2)}
    assert summed.values == {Decimal(0), Decimal(1), Decimal(2)}
    responses = [[], [1], [2], [3], [1, 2], [1, 3], [2, 3], [1, 2, 3]]
    assert {item_score(EXACT, r) for r in responses} == exact.values
