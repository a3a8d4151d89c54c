"""The sequential test's guarantees, checked by simulation with fixed seeds."""

from __future__ import annotations

import numpy as np

from shiprail.gates.stats import sequential_p_value, spent_alpha, tolerated_share


def _simulate(rate_ratio: float, runs: int, looks: int, seed: int) -> float:
    """Share of runs rejected at any of `looks` looks (canary share 10% of traffic)."""
    rng = np.random.default_rng(seed)
    rho, base_rate, per_look = 0.1, 0.01, 2000
    rejected = 0
    for _ in range(runs):
        c_err = b_err = 0
        p = 1.0
        for _ in range(looks):
            c_err += rng.poisson(per_look * rho * base_rate * rate_ratio)
            b_err += rng.poisson(per_look * (1 - rho) * base_rate)
            p = sequential_p_value(b_err, c_err, rho, 100.0, p)
            if p <= 0.01 and c_err / max(c_err + b_err, 1) > rho:
                rejected += 1
                break
    return rejected / runs


def test_false_rejections_stay_below_alpha_despite_many_looks() -> None:
    assert _simulate(1.0, runs=400, looks=30, seed=7) <= 0.01


def test_doubled_error_rate_is_detected() -> None:
    assert _simulate(2.0, runs=200, looks=30, seed=11) >= 0.9


def test_tolerated_share() -> None:
    assert tolerated_share(0.1, 0.0) == 0.1
    assert abs(tolerated_share(0.1, 1.0) - 0.2 / 1.1) < 1e-12


def test_alpha_spending_sums_to_alpha() -> None:
    assert abs(sum(spent_alpha(0.01, k, 10) for k in range(1, 11)) - 0.01) < 1e-12
    assert spent_alpha(0.01, 11, 10) == 0.0
