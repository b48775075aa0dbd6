"""The validity indicators of one attempt (app/scoring/validity.py) on hand-made data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.scoring.outcomes import ResultValues
from app.scoring.validity import (
    FormItem,
    Save,
    ValidityRules,
    indicators,
    response_times,
    withhold,
)

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_response_time_is_from_the_save_before_or_the_section_start():
    section_of = {1: 0, 2: 0, 3: 1, 4: 1}
    starts = {0: at(0), 1: at(100)}
    saves = [Save(1, at(12)), Save(2, at(14.5)), Save(1, at(20)),  # item 1 changed: first counts
             Save(3, at(130)), Save(4, at(131))]
    assert response_times(saves, section_of, starts) == {
        1: Decimal("12.0"), 2: Decimal("2.5"), 3: Decimal("30.0"), 4: Decimal("1.0")}
    # Without a known section start the first save of the section has no time.
    assert 3 not in response_times(saves, section_of, {0: at(0)})


def form(answered: list[bool], places: list[int | None] | None = None, section: int = 0):
    places = places or [None] * len(answered)
    return [FormItem(n, section, a, p)
            for n, (a, p) in enumerate(zip(answered, places, strict=True), 1)]


def test_a_section_answered_below_the_share_is_not_scoreable():
    items = form([True, True, False, False]) + [
        FormItem(10 + n, 1, n < 2, None) for n in range(3)]  # 2 of 3 answered
    result = indicators(items, {}, ValidityRules(), time_used_s=600)
    assert result["sections"] == [
        {"section": 1, "answered": 2, "administered": 4, "share": "0.5000"},
        {"section": 2, "answered": 2, "administered": 3, "share": "0.6667"}]
    assert result["scoreable"] is True  # 0.5 is not below 0.5
    fewer = indicators(form([True, False, False, False]), {}, ValidityRules(), time_used_s=None)
    assert fewer["scoreable"] is False
    assert fewer["reasons"] == [{"rule": "few_answered", "section": 1, "answered": 1,
                                 "administered": 4}]


def test_response_time_effort_below_090_is_rapid_guessing():
    items = form([True] * 10)
    times = {n: Decimal(30) for n in range(1, 11)}
    times[1] = Decimal("2.999")  # one rapid guess in ten: RTE 0.90, not below
    ok = indicators(items, times, ValidityRules(), time_used_s=300)
    assert (ok["rapid"], ok["timed"], ok["rte"], ok["scoreable"]) == (1, 10, "0.9000", True)
    times[2] = Decimal(1)  # two in ten: RTE 0.80
    flagged = indicators(items, times, ValidityRules(), time_used_s=300)
    assert flagged["reasons"] == [{"rule": "rapid_guessing", "rapid": 2, "timed": 10,
                                   "rte": "0.8000"}]
    times[2] = Decimal(3)  # exactly the threshold is not rapid
    assert indicators(items, times, ValidityRules(), time_used_s=300)["rapid"] == 1


def test_a_long_run_of_the_same_place_is_straight_lining():
    places = [1, 2] + [3] * 10 + [1]
    result = indicators(form([True] * 13, places), {}, ValidityRules(), time_used_s=None)
    assert result["longest_same_place_run"] == 10
    assert result["reasons"] == [{"rule": "straight_lining", "run": 10}]
    # A blank in between breaks the run; nine in a row is allowed.
    answered = [True] * 13
    answered[7] = False
    broken = indicators(form(answered, places), {}, ValidityRules(), time_used_s=None)
    assert broken["longest_same_place_run"] == 5 and broken["scoreable"] is True


def test_rules_come_from_the_session_settings_and_are_checked():
    rules = ValidityRules.from_settings({"validity": {"min_rte": "0.8", "straight_run": 6}})
    assert rules.min_rte == Decimal("0.8") and rules.straight_run == 6
    assert rules.rapid_threshold_s == Decimal(3)  # the default stays
    assert ValidityRules.from_settings(None) == ValidityRules()
    with pytest.raises(ValueError):
        ValidityRules.from_settings({"validity": {"min_answered_share": 2}})


def test_withhold_keeps_the_scores_and_drops_the_judgements():
    values = ResultValues(total_score=Decimal(40), jpm=Decimal("88.89"), category="Cukup Optimal",
                          potensi_band="Menengah", nine_box=5, key_revision=3,
                          detail={"combined_jpm": "85.00", "potensi_score": "70.00"})
    kept = withhold(values, {"scoreable": True, "reasons": []})
    assert (kept.jpm, kept.category, kept.nine_box) == (Decimal("88.89"), "Cukup Optimal", 5)
    assert kept.detail["validity"] == {"scoreable": True, "reasons": []}
    dropped = withhold(values, {"scoreable": False, "reasons": [{"rule": "few_answered"}]})
    assert (dropped.jpm, dropped.category, dropped.potensi_band, dropped.nine_box) == (
        None, "", "", None)
    assert dropped.total_score == Decimal(40) and dropped.detail["potensi_score"] == "70.00"
    assert dropped.detail["combined_jpm"] is None


def test_the_worked_example_of_the_psychometrics_doc():
    section_of = {1: 0, 2: 0, 3: 0, 4: 0}
    times = response_times([Save(1, at(2)), Save(2, at(40)), Save(3, at(41))], section_of,
                           {0: at(0)})
    assert times == {1: Decimal("2.0"), 2: Decimal("38.0"), 3: Decimal("1.0")}
    result = indicators(form([True, True, True, False]), times, ValidityRules(),
                        time_used_s=41)
    assert result["sections"][0]["share"] == "0.7500" and result["rte"] == "0.3333"
    assert result["reasons"] == [{"rule": "rapid_guessing", "rapid": 2, "timed": 3,
                                  "rte": "0.3333"}]


def test_an_accepted_result_is_not_withheld():
    from app.scoring.validity import withheld

    assert withheld(None) is False and withheld({}) is False  # scored before the indicators
    assert withheld({"scoreable": True}) is False
    assert withheld({"scoreable": False, "reasons": [{"rule": "few_answered"}]}) is True
    assert withheld({"scoreable": False, "accepted": {"by": "user:admin"}}) is False
    values = ResultValues(total_score=Decimal(1), jpm=Decimal(90), category="Optimal",
                          potensi_band="Tinggi", nine_box=9, key_revision=0, detail={})
    kept = withhold(values, {"scoreable": False, "accepted": {"by": "user:admin"}})
    assert (kept.jpm, kept.category, kept.nine_box) == (Decimal(90), "Optimal", 9)
