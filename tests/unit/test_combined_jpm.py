"""The combined JPM is computed from the unrounded potensi score and JPM and rounded once; a
category is read from the two-decimal value that is stored and shown. Every number is computed
by hand (docs/psychometrics.md, "Reading against the job")."""

from decimal import Decimal as D
from fractions import Fraction as F

from app.scoring import engine
from app.scoring.outcomes import (
    KOMPETENSI,
    POTENSI,
    ConstructOutcome,
    ScoringConfig,
    ScoringData,
    result_values,
)


def test_round2_is_exact_and_rounds_half_to_even():
    assert engine.round2(F(12345, 1000)) == D("12.34")  # 12.345: a tie, to the even 4
    assert engine.round2(F(12355, 1000)) == D("12.36")  # 12.355: a tie, to the even 6
    assert engine.round2(F(123451, 10000)) == D("12.35")  # above the tie
    assert engine.round2(F(2, 3)) == D("0.67") and engine.round2(0) == D("0.00")
    assert str(engine.round2(F(250, 3))) == "83.33"
    # the rounding every percent has always had: 0.5 / 80 = 0.625 % -> 0.62
    assert engine.percent(D("0.5"), D(80)) == D("0.62")


def test_exact_values_and_their_rounded_copies():
    assert engine.jpm_exact({"a": 4, "b": 1}, {"a": 3, "b": 3}) == F(250, 3)
    assert engine.jpm({"a": 4, "b": 1}, {"a": 3, "b": 3}) == D("83.33")
    assert engine.jpm_exact({"a": 5}, {"a": 3}) == 100
    assert engine.jpm_exact({"a": 5}, {"a": 3}, cap=False) == F(500, 3)
    parts = [(D("6.5"), D(15)), (D(5), D(5)), (D(4), D(5))]
    assert engine.mean_percent_exact(parts) == F(670, 9)  # (130/3 + 100 + 80) / 3
    assert engine.mean_percent(parts) == D("74.44")
    assert engine.mean_percent_exact([]) is None


def test_combined_jpm_rounds_once_not_its_rounded_parts():
    # 0.4 x 670/9 + 0.6 x 250/3 = 268/9 + 50 = 718/9 = 79.777... -> 79.78
    assert engine.combined_jpm(F(670, 9), F(250, 3), (40, 60)) == D("79.78")
    # from the two-decimal copies the second decimal differs: 0.4 x 74.44 + 0.6 x 83.33
    # = 29.776 + 49.998 = 79.774 -> 79.77
    assert engine.combined_jpm(D("74.44"), D("83.33"), (40, 60)) == D("79.77")
    # 0.3 x 670/9 + 0.7 x 250/3 = 67/3 + 175/3 = 242/3 = 80.666... (rounded first: 80.66)
    assert engine.combined_jpm(F(670, 9), F(250, 3), (30, 70)) == D("80.67")


def _outcome(construct, kind, raw, max_raw, level=None):
    return ConstructOutcome(construct, kind, 1, 0, raw=D(raw), max_raw=D(max_raw), level=level)


def test_result_values_combine_the_unrounded_scores():
    """An administrator: aspects 6.5/15, 5/5, 4/5 (potensi 670/9 = 74.44...), levels 4 and 1
    against 3 and 3 (JPM 250/3 = 83.33...), weights 40/60: combined 79.78, not 79.77."""
    data = ScoringData(standards={("administrator", "integritas"): 3,
                                  ("administrator", "kerjasama"): 3})
    outcomes = [_outcome("kompetensi.integritas", KOMPETENSI, 8, 10, 4),
                _outcome("kompetensi.kerjasama", KOMPETENSI, 1, 10, 1),
                _outcome("potensi.kecerdasan_emosional", POTENSI, 5, 5),
                _outcome("potensi.motivasi_komitmen", POTENSI, 4, 5),
                _outcome("potensi.numerik", POTENSI, "6.5", 15)]
    values = result_values(data, ScoringConfig(), job_group="administrator", grade="",
                           outcomes=outcomes, rating=None)
    assert values.jpm == D("83.33") and values.category == "Cukup Optimal"
    assert values.detail["potensi_score"] == "74.44"
    assert values.detail["combined_jpm"] == "79.78"


def test_the_category_of_the_combined_jpm_is_read_from_its_two_decimals():
    """A pelaksana (50/50) with potensi 98/121 = 80.9917...% and JPM 3/4 = 75: the combined JPM
    is 77.9958... and is stored as 78.00, so its category is Cukup Optimal (78 to < 90), as
    anyone reading 78.00 on the report would decide."""
    data = ScoringData(standards={("pelaksana", "integritas"): 4})
    outcomes = [_outcome("kompetensi.integritas", KOMPETENSI, 5, 10, 3),
                _outcome("potensi.numerik", POTENSI, 98, 121)]
    config = ScoringConfig(category_basis="combined")
    values = result_values(data, config, job_group="pelaksana", grade="", outcomes=outcomes,
                           rating=None)
    assert values.detail["combined_jpm"] == "78"
    assert values.category == "Cukup Optimal"
    kompetensi = result_values(data, ScoringConfig(), job_group="pelaksana", grade="",
                               outcomes=outcomes, rating=None)
    assert kompetensi.jpm == D("75.00") and kompetensi.category == "Kurang Optimal"
