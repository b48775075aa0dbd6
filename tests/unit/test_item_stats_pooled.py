"""Reliability where the forms are drawn from a pool (app/analysis/stats.py): the alpha of the
average form from pairwise covariances, and the marginal reliability of EAP estimates."""

from __future__ import annotations

import random

import pytest

from app.analysis.stats import ItemSpec, OptionSpec, analyse

OPTIONS = (OptionSpec("A", False), OptionSpec("B", False))


def spec(n: int, kind: str = "weighted", max_score: float = 100.0) -> ItemSpec:
    return ItemSpec(f"I{n:02d}", "scale", kind, max_score, OPTIONS)


def test_pooled_alpha_recovers_the_alpha_of_parallel_items():
    """Parallel items x = t + e, var(t) = 1, var(e) = 4: a 10-item form has alpha
    10 x 1 / (5 + 9 x 1) = 0.7143. Each of 3,000 people gets 10 of a 30-item pool."""
    rng = random.Random(7)
    pool, per_person = 30, 10
    scores = []
    for _ in range(3000):
        t = rng.gauss(0, 1)
        mine = set(rng.sample(range(pool), per_person))
        scores.append([t + rng.gauss(0, 2) + 50 if j in mine else None for j in range(pool)])
    stat = analyse([spec(j) for j in range(pool)], scores).scales[0]
    assert stat.method == "pooled alpha" and stat.n == 3000
    assert stat.items_per_person == pytest.approx(10)
    assert stat.reliability == pytest.approx(10 / 14, abs=0.02)
    # SEM on the raw scale of the average form: sqrt(k v + k (k-1) c) sqrt(1 - alpha),
    # about sqrt(50 + 90) x sqrt(4/14) = 2 sqrt(10) = 6.32.
    assert stat.sem == pytest.approx(2 * 10 ** 0.5, abs=0.3)


def test_the_classical_path_stays_when_everyone_had_every_item():
    rows = [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    stat = analyse([spec(j, "single", 1.0) for j in range(3)], rows).scales[0]
    assert stat.method == "KR-20" and stat.n == 4 and stat.items_per_person is None


def test_marginal_reliability_of_eap_estimates():
    rows = [[1.0, None], [None, 1.0], [0.0, None]]
    estimates = {"scale": [(-1.0, 0.5), (0.0, 0.5), (1.0, 0.5)]}
    stat = analyse([spec(j, "single", 1.0) for j in range(2)], rows,
                   estimates=estimates).scales[0]
    # var(theta) = 2/3 (population), mean SE^2 = 0.25: 0.6667 / 0.9167 = 0.7273.
    assert stat.method == "marginal" and stat.n == 3
    assert stat.reliability == pytest.approx((2 / 3) / (2 / 3 + 0.25))
    assert stat.sem == pytest.approx(0.5) and stat.mean == pytest.approx(0.0)
    # Without an estimate for everyone the pooled estimate is used instead.
    partial = analyse([spec(j, "single", 1.0) for j in range(2)], rows,
                      estimates={"scale": estimates["scale"][:2]}).scales[0]
    assert partial.method != "marginal"


def test_pooled_kr20_uses_right_or_wrong():
    rng = random.Random(3)
    scores = []
    for _ in range(2000):
        ability = rng.gauss(0, 1)
        mine = set(rng.sample(range(20), 8))
        scores.append([(5.0 if rng.random() < 1 / (1 + 2.718 ** -(ability - (j - 10) / 5))
                        else 0.0) if j in mine else None for j in range(20)])
    stat = analyse([spec(j, "single", 5.0) for j in range(20)], scores).scales[0]
    assert stat.method == "pooled KR-20" and 0.3 < stat.reliability < 0.8
    # The SEM is in points, like the mean and SD: the same answers scored 1 for right give
    # the same reliability and an SEM five times smaller.
    ones = analyse([spec(j, "single", 1.0) for j in range(20)],
                   [[None if v is None else v / 5 for v in row] for row in scores]).scales[0]
    assert ones.reliability == pytest.approx(stat.reliability)
    assert stat.sem == pytest.approx(5 * ones.sem)
    assert stat.sd == pytest.approx(5 * ones.sd)
    # An 8-item form of 5-point items: SEM in points is a sizeable share of the 40 maximum.
    assert 2.5 < stat.sem < 10
