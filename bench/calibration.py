"""How long field calibration takes (app/analysis/calibration.py), and how well it recovers
known parameters at that size: N simulated people answer a random K of a P-item pool under
the 2PL (a ~ U(0.6, 2), b ~ U(-2, 2), fixed seed), then the pool is calibrated.

    .venv/bin/python bench/calibration.py [--people 1000] [--pool 40] [--per-person 25]
                                          [--model 2PL] [--runs 3]

Prints the median time of ``--runs`` calibrations and the RMSE of a and b against the truth.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from app.analysis.calibration import calibrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=40)
    parser.add_argument("--per-person", type=int, default=25)
    parser.add_argument("--model", default="2PL")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261204)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    a = rng.uniform(0.6, 2.0, args.pool)
    b = rng.uniform(-2.0, 2.0, args.pool)
    theta = rng.normal(0.0, 1.0, args.people)
    right = rng.random((args.people, args.pool)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))
    matrix = right.astype(float)
    for row in matrix:  # each person sees a random part of the pool
        row[rng.choice(args.pool, args.pool - args.per_person, replace=False)] = np.nan
    codes = [f"I{j:03d}" for j in range(args.pool)]
    times, result = [], None
    for _ in range(args.runs):
        started = time.perf_counter()
        result = calibrate(codes, matrix, model=args.model, min_responses=50)
        times.append(time.perf_counter() - started)
    assert result is not None
    index = {item.code: j for j, item in enumerate(result.items)}
    est_a = np.array([result.items[index[c]].a for c in codes])
    est_b = np.array([result.items[index[c]].b for c in codes])
    print(f"{args.people} people x {args.per_person} of {args.pool} items, {args.model}: "
          f"median {statistics.median(times):.3f} s over {args.runs} runs "
          f"({result.iterations} EM cycles, converged {result.converged}); "
          f"RMSE a {float(np.sqrt(np.mean((est_a - a) ** 2))):.3f}, "
          f"RMSE b {float(np.sqrt(np.mean((est_b - b) ** 2))):.3f}")


if __name__ == "__main__":
    main()
