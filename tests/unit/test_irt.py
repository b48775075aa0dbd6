"""EAP ability estimates (app.scoring.irt) against values computed independently of the module.

Golden references, and where they come from:
- a brute-force posterior mean / SD by pure-Python trapezoidal integration on a fine grid over
  [-8, 8] (16001 nodes), written here without numpy and without the module's code;
- symmetry: with every item at b = 0, equal a and no guessing, the likelihood of a pattern with
  as many right as wrong answers is an even function of theta (P(-t) = 1 - P(t)), and so is the
  N(0, 1) prior, so the posterior mean is exactly 0 (and flipping every answer mirrors theta);
- a closed form: for one normal-ogive item P = Phi(a (theta - b)) and a N(0, 1) prior, the
  posterior after a correct answer is skew-normal (Azzalini 1985, Scand. J. Statist. 12,
  171-178) with mean a / sqrt(1 + a^2) * phi(tau) / Phi(tau), tau = -a b / sqrt(1 + a^2); for
  a = 1, b = 0: mean 1 / sqrt(pi) = 0.5642, SD sqrt(1 - 1/pi) = 0.8256. The logistic curve with
  D = 1.702 stays within 0.01 of the normal ogive (Haley 1952), so the module's EAP with
  scaling=1.702 must land within a few thousandths of it.
"""

from __future__ import annotations

import math

import pytest

from app.scoring.irt import NORMAL_OGIVE_D, eap, probability


def brute_force(responses, params, *, mean=0.0, sd=1.0, scaling=1.0, lo=-8.0, hi=8.0,
                n=16001):
    """Posterior mean and SD by the trapezoidal rule, in plain Python."""
    step = (hi - lo) / (n - 1)
    m0 = m1 = m2 = 0.0
    for k in range(n):
        t = lo + k * step
        density = math.exp(-0.5 * ((t - mean) / sd) ** 2)
        for u, (a, b, c) in zip(responses, params, strict=True):
            if u is None:
                continue
            p = c + (1 - c) / (1 + math.exp(-scaling * a * (t - b)))
            density *= p if u == 1 else 1 - p
        w = 0.5 if k in (0, n - 1) else 1.0
        m0 += w * density
        m1 += w * density * t
        m2 += w * density * t * t
    mu = m1 / m0
    return mu, math.sqrt(m2 / m0 - mu * mu)


THREE_PL = [(1.2, -0.4, 0.2), (0.8, 0.3, 0.25), (1.7, 1.0, 0.15), (1.0, -1.5, 0.2),
            (1.4, 0.6, 0.0)]


def test_probability_3pl_by_hand():
    # theta = b: the curve is half-way between c and 1.
    assert probability(0.3, 1.5, 0.3, 0.2) == pytest.approx(0.6)
    # 2PL, D = 1: 1 / (1 + e^-1) = 0.7310586
    assert probability(1.0, 1.0, 0.0) == pytest.approx(0.7310585786)
    # D = 1.702 is the normal-ogive metric: P(1) ~ Phi(1) = 0.8413 within 0.01
    assert probability(1.0, 1.0, 0.0, scaling=NORMAL_OGIVE_D) == pytest.approx(0.8413, abs=0.01)
    assert probability(-1e6, 1.0, 0.0, 0.25) == pytest.approx(0.25)  # no overflow
    assert probability(1e6, 1.0, 0.0, 0.25) == pytest.approx(1.0)


@pytest.mark.parametrize("responses", [
    [1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, None, 0, None, 1], [0, 1, 1, 0, 0]])
def test_eap_matches_brute_force_integration(responses):
    expected_mean, expected_sd = brute_force(responses, THREE_PL)
    mean, sd = eap(responses, THREE_PL)
    # The default 61-node grid on [-4, 4] is within a few thousandths of the exact posterior
    # (most of the difference is the cut tail of an all-wrong posterior below -4) ...
    assert mean == pytest.approx(expected_mean, abs=3e-3)
    assert sd == pytest.approx(expected_sd, abs=3e-3)
    # ... and a fine grid on the same range as the reference agrees to six decimals.
    fine = eap(responses, THREE_PL, points=3201, lo=-8.0, hi=8.0)
    assert fine[0] == pytest.approx(expected_mean, abs=1e-6)
    assert fine[1] == pytest.approx(expected_sd, abs=1e-6)


def test_eap_with_another_prior_and_scaling_matches_brute_force():
    responses, params = [1, 1, 0, 1], [(1.0, -0.5, 0.0), (0.7, 0.0, 0.0), (1.3, 0.4, 0.0),
                                       (1.1, 1.2, 0.0)]
    expected = brute_force(responses, params, mean=0.5, sd=0.8, scaling=NORMAL_OGIVE_D)
    got = eap(responses, params, prior_mean=0.5, prior_sd=0.8, scaling=NORMAL_OGIVE_D)
    assert got == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("pattern", [[1, 0], [1, 0, 1, 0], [0, 0, 1, 1, 1, 0], [1, 1, 0, 0]])
@pytest.mark.parametrize("a", [0.6, 1.0, 2.2])
def test_symmetric_pattern_gives_theta_zero(pattern, a):
    params = [(a, 0.0, 0.0)] * len(pattern)
    mean, sd = eap(pattern, params)
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert 0 < sd < 1  # information from the items shrinks the prior SD


def test_mirrored_pattern_mirrors_theta():
    params = [(1.1, -0.8, 0.0), (0.9, 0.2, 0.0), (1.5, 1.1, 0.0)]
    up, up_sd = eap([1, 1, 0], params)
    down, down_sd = eap([0, 0, 1], [(a, -b, c) for a, b, c in params])
    assert down == pytest.approx(-up, abs=1e-12) and down_sd == pytest.approx(up_sd, abs=1e-12)


def test_one_normal_ogive_item_closed_form():
    mean, sd = eap([1], [(1.0, 0.0, 0.0)], scaling=NORMAL_OGIVE_D)
    assert mean == pytest.approx(1 / math.sqrt(math.pi), abs=0.003)  # 0.5642
    assert sd == pytest.approx(math.sqrt(1 - 1 / math.pi), abs=0.003)  # 0.8256
    for a, b in ((1.0, 1.0), (1.0, -1.0), (0.5, 0.5)):
        tau = -a * b / math.sqrt(1 + a * a)
        phi = math.exp(-tau * tau / 2) / math.sqrt(2 * math.pi)
        big_phi = 0.5 * (1 + math.erf(tau / math.sqrt(2)))
        expected = a / math.sqrt(1 + a * a) * phi / big_phi
        # Away from b = 0 the logistic's heavier tails move the posterior mean by up to 0.015
        # (a fine grid gives the same numbers: this is the model difference, not quadrature).
        assert eap([1], [(a, b, 0.0)], scaling=NORMAL_OGIVE_D)[0] == pytest.approx(expected,
                                                                                     abs=0.02)


def test_no_responses_give_the_prior():
    mean, sd = eap([], [])
    assert mean == pytest.approx(0.0, abs=1e-12) and sd == pytest.approx(1.0, abs=1e-3)
    assert eap([None, None], [(1, 0, 0), (1, 1, 0)], prior_mean=0.4, prior_sd=0.5) == \
        pytest.approx((0.4, 0.5), abs=1e-3)


def test_extreme_patterns_stay_finite_and_ordered():
    params = [(1.0, b / 2, 0.2) for b in range(-4, 5)]
    low, _ = eap([0] * 9, params)
    high, _ = eap([1] * 9, params)
    middle, _ = eap([1, 1, 1, 1, 0, 0, 0, 0, 0], params)
    assert -4 < low < middle < high < 4
    many = [(2.5, 0.0, 0.0)] * 400  # a likelihood far below the smallest float
    assert math.isfinite(eap([1] * 200 + [0] * 200, many)[0])


def test_guessing_lowers_the_reward_for_a_right_answer():
    without, _ = eap([1], [(1.0, 0.0, 0.0)])
    with_guessing, _ = eap([1], [(1.0, 0.0, 0.25)])
    assert 0 < with_guessing < without


@pytest.mark.parametrize("responses,params", [
    ([1], []), ([2], [(1, 0, 0)]), ([1], [(0, 0, 0)]), ([1], [(1, 0, 1.0)])])
def test_invalid_input_is_refused(responses, params):
    with pytest.raises(ValueError):
        eap(responses, params)
