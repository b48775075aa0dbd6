"""Golden cases for the scoring engine, each computed by hand from the conventions of the
assessment domain (docs/domain.md) or from a cited formula."""

from decimal import Decimal as D

import pytest

from app.scoring.engine import (
    ScoredItem,
    ScoredOption,
    category,
    cronbach_alpha,
    gaps,
    item_max,
    item_score,
    jpm,
    kr20,
    level_for,
    nine_box,
    percent,
    potensi_band,
)

SINGLE = ScoredItem("single", [ScoredOption(1), ScoredOption(2, is_key=True), ScoredOption(3)])
WEIGHTED = ScoredItem("weighted", [ScoredOption(1, weight=D(5)), ScoredOption(2, weight=D(3)),
                                   ScoredOption(3, weight=D(1))])
MULTIPLE = ScoredItem("multiple", [ScoredOption(1, weight=D(2)), ScoredOption(2, weight=D(2)),
                                   ScoredOption(3, weight=D(-1)), ScoredOption(4, weight=D(1))],
                      {"min": 0, "max": 4})
LIKERT = ScoredItem("likert", [ScoredOption(i) for i in range(1, 6)])
LIKERT_REVERSED = ScoredItem("likert", [ScoredOption(i) for i in range(1, 6)],
                             {"reverse": True})


@pytest.mark.parametrize(("item", "response", "expected"), [
    (SINGLE, 2, D(5)), (SINGLE, 1, D(0)), (SINGLE, None, D(0)),
    (WEIGHTED, 1, D(5)), (WEIGHTED, 3, D(1)), (WEIGHTED, None, D(0)),
    (MULTIPLE, [1, 2], D(4)),        # 2 + 2
    (MULTIPLE, [1, 2, 4], D(4)),     # 5, clamped to the upper bound 4
    (MULTIPLE, [1, 3], D(1)),        # 2 - 1
    (MULTIPLE, [3], D(0)),           # -1, clamped to the lower bound 0
    (MULTIPLE, [], D(0)),
    (LIKERT, 4, D(4)), (LIKERT_REVERSED, 4, D(2)), (LIKERT_REVERSED, 1, D(5)),
])
def test_item_scores(item, response, expected):
    assert item_score(item, response) == expected


def test_points_per_bank_and_maxima():
    rules = {"points": {"single": {"correct": 4, "wrong": -1}}}
    assert item_score(SINGLE, 2, rules) == D(4) and item_score(SINGLE, 3, rules) == D(-1)
    assert item_score(SINGLE, None, rules) == D(0)  # blank stays 0
    assert [item_max(i) for i in (SINGLE, WEIGHTED, MULTIPLE, LIKERT)] == [D(5), D(5), D(4),
                                                                           D(5)]
    unbounded = ScoredItem("multiple", MULTIPLE.options)
    assert item_max(unbounded) == D(5)  # sum of the positive points


def test_levels_from_cut_scores_and_norm_table():
    cuts = {"cut_scores": [12, 17, 22, 27]}
    assert [level_for(D(r), cuts) for r in (6, 11.5, 12, 16, 17, 26, 27, 30)] == \
        [1, 1, 2, 2, 3, 4, 5, 5]
    norm = {"norm_table": [{"min_raw": 0, "level": 1}, {"min_raw": 10, "level": 2},
                           {"min_raw": 20, "level": 4}]}
    assert [level_for(D(r), norm) for r in (0, 9, 10, 19, 20)] == [1, 1, 2, 2, 4]
    assert level_for(D(10), None) is None


def test_percent_and_potensi_bands():
    assert percent(D(35), D(70)) == D("50.00") and percent(D(0), D(0)) == D(0)
    assert [potensi_band(D(v)) for v in (59.99, 60, 79.99, 80)] == \
        ["Rendah", "Menengah", "Menengah", "Tinggi"]


def test_jpm_gap_and_category_boundaries():
    required = {"integritas": 3, "kerjasama": 3, "komunikasi": 3}
    achieved = {"integritas": 4, "kerjasama": 2, "komunikasi": 3}
    assert gaps(achieved, required) == {"integritas": 1, "kerjasama": -1, "komunikasi": 0}
    assert jpm(achieved, required) == D("100.00")  # 9 / 9
    assert jpm({"integritas": 5, "kerjasama": 5, "komunikasi": 3}, required) == D(100)
    assert jpm({"integritas": 5, "kerjasama": 5, "komunikasi": 3}, required,
               cap=False) == D("144.44")
    assert jpm({"integritas": 2, "kerjasama": 2, "komunikasi": 3}, required) == D("77.78")
    assert [category(D(v)) for v in (90, "89.99", 78, "77.99")] == \
        ["Optimal", "Cukup Optimal", "Cukup Optimal", "Kurang Optimal"]
    assert [category(D(v), "placement") for v in (80, "79.99", 68, "67.99")] == \
        ["Memenuhi Syarat", "Masih Memenuhi Syarat", "Masih Memenuhi Syarat",
         "Kurang Memenuhi Syarat"]


def test_nine_box_numbering():
    assert nine_box("below", "low") == 1 and nine_box("above", "high") == 9
    assert nine_box("as_expected", "medium") == 5 and nine_box("above", "low") == 4
    assert nine_box("below", "high") == 6 and nine_box("as_expected", "high") == 8
    assert sorted(nine_box(p, q) for p in ("below", "as_expected", "above")
                  for q in ("low", "medium", "high")) == list(range(1, 10))


def test_kr20_and_alpha_on_a_hand_computed_guttman_scale():
    # 4 persons x 3 items, a perfect Guttman pattern. p = .75, .5, .25; sum pq = .625;
    # totals 3, 2, 1, 0: population variance 1.25. KR-20 = 3/2 * (1 - .625/1.25) = .75.
    matrix = [[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert kr20(matrix) == pytest.approx(0.75)
    assert cronbach_alpha(matrix) == pytest.approx(0.75)  # alpha equals KR-20 for 0/1 items
    # Independent items give no consistency: alpha 0 when the items do not co-vary.
    assert cronbach_alpha([[1, 0], [0, 1], [1, 1], [0, 0]]) == pytest.approx(0.0)
    assert kr20([[1, 1], [1, 1]]) is None  # no total variance: undefined


def test_the_plain_names_in_the_scoring_outcomes_are_the_models_values():
    """app.scoring.outcomes reads no model: its bank kinds and job groups are plain text."""
    from app.bank.models import BankKind
    from app.scoring import outcomes
    from app.sessions.models import JobGroup

    assert {outcomes.POTENSI, outcomes.KOMPETENSI} == {k.value for k in BankKind}
    assert set(outcomes.DEFAULT_COMBINED_WEIGHTS) == {g.value for g in JobGroup}
    assert JobGroup.fungsional.value == outcomes.FUNGSIONAL
