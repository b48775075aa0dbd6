"""Item response theory for the potensi aspects: the logistic item response function and the
EAP (expected a posteriori) ability estimate with its posterior standard deviation.

Scaling constant. The item response function is written with a scaling constant ``D``:

    P_j(theta) = c_j + (1 - c_j) / (1 + exp(-D * a_j * (theta - b_j)))

The assessment domain does not prescribe ``D``. The default here is ``D = 1`` (the logistic
metric), because that is what current calibration software reports (R ``mirt`` and ``TAM``, for
example) and so what a bank's ``irt: {a, b, c}`` is most likely to be on. Banks calibrated on
the normal-ogive metric (BILOG-style output) pass ``scaling=NORMAL_OGIVE_D`` (1.702, with
which the logistic curve stays within 0.01 of the normal ogive everywhere; Haley 1952, see
Lord & Novick 1968, p. 399). Every function in this module takes the same keyword, so one
call site decides it for a whole computation.

1PL / 2PL / 3PL are the same function: a 1PL item is ``(1, b, 0)``, a 2PL item ``(a, b, 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import overload

import numpy as np

LOGISTIC_D = 1.0
NORMAL_OGIVE_D = 1.702
D = LOGISTIC_D  # the default of every function below


@overload
def probability(theta: float, a: float, b: float, c: float = 0.0, *,
                scaling: float = D) -> float: ...
@overload
def probability(theta: np.ndarray, a: float, b: float, c: float = 0.0, *,
                scaling: float = D) -> np.ndarray: ...
def probability(theta: float | np.ndarray, a: float, b: float, c: float = 0.0, *,
                scaling: float = D) -> float | np.ndarray:
    """P(correct | theta) = c + (1 - c) / (1 + exp(-D * a * (theta - b))) (Birnbaum 1968, in
    Lord & Novick 1968, ch. 17). ``theta`` may be a number (a float comes back) or a numpy
    array (an array comes back)."""
    z = -scaling * a * (np.asarray(theta, dtype=float) - b)
    # exp overflows past ~709; clipping there changes P by less than 1e-300.
    p = c + (1.0 - c) / (1.0 + np.exp(np.clip(z, -700.0, 700.0)))
    return float(p) if np.ndim(p) == 0 else p


def _check(responses: Sequence[int | None], params: Sequence[tuple[float, float, float]]
           ) -> None:
    if len(responses) != len(params):
        raise ValueError(f"{len(responses)} responses but {len(params)} item parameter sets")
    for index, (response, (a, _b, c)) in enumerate(zip(responses, params, strict=True)):
        if response not in (None, 0, 1):
            raise ValueError(f"response {index} is {response!r}; expected 0, 1 or None")
        if not a > 0:
            raise ValueError(f"item {index}: discrimination a must be positive, not {a!r}")
        if not 0 <= c < 1:
            raise ValueError(f"item {index}: guessing c must be in [0, 1), not {c!r}")


@lru_cache(maxsize=64)
def _nodes(lo: float, hi: float, points: int) -> np.ndarray:
    nodes = np.linspace(lo, hi, points)
    nodes.flags.writeable = False
    return nodes


@lru_cache(maxsize=65536)
def _item_logs(a: float, b: float, c: float, scaling: float, lo: float, hi: float,
               points: int) -> tuple[np.ndarray, np.ndarray]:
    """log P and log(1 - P) of one item at the quadrature nodes. A session scores thousands of
    attempts on the same few hundred items, so these are computed once per item, not once
    per attempt (the figures are in docs/performance.md)."""
    p = np.clip(probability(_nodes(lo, hi, points), a, b, c, scaling=scaling),
                1e-300, 1.0 - 1e-16)
    right, wrong = np.log(p), np.log1p(-p)
    right.flags.writeable = wrong.flags.writeable = False
    return right, wrong


def eap(responses: Sequence[int | None], params: Sequence[tuple[float, float, float]], *,
        prior_mean: float = 0.0, prior_sd: float = 1.0, points: int = 61, lo: float = -4.0,
        hi: float = 4.0, scaling: float = D) -> tuple[float, float]:
    """EAP ability estimate and its posterior standard deviation (the standard error that goes
    with it), by fixed rectangular quadrature on a normal prior (Bock & Mislevy 1982,
    "Adaptive EAP estimation of ability in a microcomputer environment", Applied
    Psychological Measurement 6(4), 431-444):

        L(theta)  = prod_j P_j(theta)^u_j * (1 - P_j(theta))^(1 - u_j)
        W_k       = phi((X_k - mu) / sigma)                      (prior weight at node X_k)
        theta_hat = sum_k X_k L(X_k) W_k / sum_k L(X_k) W_k
        SE^2      = sum_k (X_k - theta_hat)^2 L(X_k) W_k / sum_k L(X_k) W_k

    with ``points`` equally spaced nodes X_k from ``lo`` to ``hi`` (Bock & Mislevy used 10-40
    nodes on [-4, 4]; 61 keeps the quadrature error far below any reported decimal). ``params``
    are ``(a, b, c)`` per item on the metric of ``scaling`` (see the module docstring);
    ``None`` responses (not reached, not presented) are left out of the likelihood; with no
    response at all the estimate is the prior mean and SD (as discretised on the grid).

    EAP exists for every response pattern, all-correct and all-wrong included (where maximum
    likelihood diverges), which is why it is used for short aspect scales.
    """
    _check(responses, params)
    if points < 2 or not hi > lo or not prior_sd > 0:
        raise ValueError("need points >= 2, hi > lo and prior_sd > 0")
    nodes = _nodes(lo, hi, points)
    # Logs throughout: a product of 50 probabilities underflows no float, but a sum of logs
    # stays exact, and subtracting the maximum keeps exp() in range.
    log_post = -0.5 * ((nodes - prior_mean) / prior_sd) ** 2
    for response, (a, b, c) in zip(responses, params, strict=True):
        if response is None:
            continue
        log_right, log_wrong = _item_logs(float(a), float(b), float(c), scaling, lo, hi, points)
        log_post += log_right if response == 1 else log_wrong
    weights = np.exp(log_post - log_post.max())
    total = weights.sum()
    mean = float((nodes * weights).sum() / total)
    variance = float((((nodes - mean) ** 2) * weights).sum() / total)
    return mean, math.sqrt(max(variance, 0.0))
