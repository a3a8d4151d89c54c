"""The sequential test's guarantees, checked by simulation with fixed seeds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from shiprail.gates.stats import (
    e_value,
    one_sided_log_bayes_factor,
    poisson_log_bayes_factor,
    spent_alpha,
    tolerated_share,
)


def _simulate(rate_ratio: float, runs: int, looks: int, seed: int, alpha: float = 0.01) -> float:
    """Share of runs rejected at any of `looks` looks (canary share 10% of traffic)."""
    rng = np.random.default_rng(seed)
    rho, base_rate, per_look = 0.1, 0.01, 2000
    rejected = 0
    for _ in range(runs):
        c_err = b_err = 0
        for _ in range(looks):
            c_err += rng.poisson(per_look * rho * base_rate * rate_ratio)
            b_err += rng.poisson(per_look * (1 - rho) * base_rate)
            if e_value(b_err, c_err, rho, 10.0) >= 1 / alpha:
                rejected += 1
                break
    return rejected / runs


def test_false_rejections_stay_below_alpha_despite_many_looks() -> None:
    assert _simulate(1.0, runs=400, looks=30, seed=7) <= 0.01


def test_false_rejections_stay_below_alpha_at_a_loose_level_too() -> None:
    # At α = 0.2 an invalid test shows within 400 runs: these runs reject 7.5 %; a z-test
    # at every look rejects 62 %, and counting the prior's mass above ρ twice, 24.5 %.
    assert _simulate(1.0, runs=400, looks=30, seed=8, alpha=0.2) <= 0.2


def test_a_canary_better_than_tolerated_is_rejected_even_less() -> None:
    # H0 is one-sided: a true share below ρ must not be rejected more often than ρ itself.
    assert _simulate(0.8, runs=400, looks=30, seed=9, alpha=0.2) <= _simulate(
        1.0, runs=400, looks=30, seed=9, alpha=0.2
    )


def test_doubled_error_rate_is_detected() -> None:
    assert _simulate(2.0, runs=200, looks=30, seed=11) >= 0.9


def test_the_one_sided_factor_is_the_two_sided_one_where_the_canary_is_worse() -> None:
    # 40 of 130 errors on a 10 % canary: the posterior has all its mass above ρ, so the
    # truncated prior's factor is the full one divided by the prior's mass above ρ.
    from scipy.special import betaincc

    full, one_sided = (
        poisson_log_bayes_factor(90, 40, 0.1, 10.0),
        one_sided_log_bayes_factor(90, 40, 0.1, 10.0),
    )
    assert one_sided - full == pytest.approx(-math.log(float(betaincc(1.0, 9.0, 0.1))), rel=1e-6)
    assert one_sided > full


def test_a_clearly_better_canary_gives_no_evidence_against_it() -> None:
    # 0 of 200 errors on a 10 % canary: the two-sided factor is huge, the one-sided tiny.
    assert poisson_log_bayes_factor(200, 0, 0.1, 10.0) > 10
    assert e_value(200, 0, 0.1, 10.0) < 0.1
    assert e_value(0, 0, 0.1, 10.0) == 1.0


def test_tolerated_share() -> None:
    assert tolerated_share(0.1, 0.0) == 0.1
    assert abs(tolerated_share(0.1, 1.0) - 0.2 / 1.1) < 1e-12


def test_alpha_spending_sums_to_alpha() -> None:
    assert abs(sum(spent_alpha(0.01, k, 10) for k in range(1, 11)) - 0.01) < 1e-12
    assert spent_alpha(0.01, 11, 10) == 0.0


def test_reading_between_bounds_never_overstates_a_falling_tail() -> None:
    from statistics import NormalDist

    from shiprail.gates.stats import interpolate_survival

    def lognormal(x: float, median: float = 60, sigma: float = 0.5) -> float:
        return 1 - NormalDist().cdf(math.log(x / median) / sigma)

    def mixture(x: float) -> float:  # a busy service's day: the median wobbles
        return sum(lognormal(x, m, 0.3) for m in (40, 60, 90, 130)) / 4

    for survival in (lognormal, mixture):
        for low, high in ((25, 50), (50, 100), (100, 250), (250, 500)):
            for x in (low * 1.1, low * 1.5, high * 0.95):
                read = interpolate_survival(low, high, survival(low), survival(high), x)
                assert survival(high) <= read <= survival(x) + 1e-12
    pareto = lambda x: (10 / x) ** 2  # noqa: E731 - exact on a power law
    assert interpolate_survival(100, 250, pareto(100), pareto(250), 150) == pytest.approx(pareto(150))


def test_dispersion_is_about_one_for_binomial_counts_and_grows_with_noise() -> None:
    from shiprail.gates.stats import dispersion, observe_interval

    rng = np.random.default_rng(5)
    quiet: dict[str, Any] = {}
    noisy: dict[str, Any] = {}
    for _ in range(200):
        n = int(rng.choice([3, 40, 400]))  # uneven intervals: a lull, a shock
        c = float(rng.binomial(n, 0.2))
        observe_interval(quiet, c, n - c)
        p = float(np.clip(0.2 * rng.gamma(4, 1 / 4), 0, 1))
        c = float(rng.binomial(n, p))
        observe_interval(noisy, c, n - c)
    assert dispersion(quiet, 0.95) < 3  # of a ceiling of Σn²/Σn ≈ 366
    assert dispersion(noisy, 0.95) > 10


def test_a_share_pinned_in_one_arm_is_no_evidence_that_it_never_varies() -> None:
    """A tail bound's slow requests sit in one arm for many intervals, then a burst puts them
    in both: the steady zeros must not read as a share that never varies (φ = 1)."""
    from shiprail.gates.stats import dispersion, observe_interval

    for quiet in (2.0, 3.0, 50.0):  # slow requests an interval before the burst, all baseline
        quiet_then_burst: dict[str, Any] = {}
        for _ in range(15):
            observe_interval(quiet_then_burst, 0.0, quiet)
        observe_interval(quiet_then_burst, 70.0, 47.0)
        assert dispersion(quiet_then_burst, 0.95) > 20, quiet

    slow_pods: dict[str, Any] = {}  # the canary's pods slow for two intervals, the baseline fine
    observe_interval(slow_pods, 16.0, 0.0)
    observe_interval(slow_pods, 5.0, 0.0)
    assert dispersion(slow_pods, 0.95) > 1.5


def test_each_pairs_chi_square_is_unbiased_however_few_the_requests() -> None:
    from shiprail.gates.stats import observe_interval

    rng = np.random.default_rng(11)
    state: dict[str, Any] = {}
    for _ in range(20_000):
        n = int(rng.choice([1, 2, 3, 8]))
        c = float(rng.binomial(n, 0.3))
        observe_interval(state, c, n - c)
    observed, _, m = state["chi1"]
    assert m > 5_000 and observed / m == pytest.approx(1.0, abs=0.04)


def test_pairs_that_happen_to_agree_are_no_proof_that_the_share_never_varies() -> None:
    """Two busy intervals with the very same share: a χ² sum of 0 is chance, not a share that
    never varies, so the counts must not be taken at face value (φ = 1)."""
    from shiprail.gates.stats import dispersion, observe_interval

    state: dict[str, Any] = {}
    observe_interval(state, 200.0, 800.0)
    observe_interval(state, 200.0, 800.0)
    assert dispersion(state, 0.95) > 50  # of a ceiling of 1,000


def test_the_first_few_pairs_of_over_dispersed_intervals_never_read_as_binomial() -> None:
    """Beta-binomial intervals (ρ = 0.02, 500 bad requests each, so φ ≈ 11): over the first
    six pairs, the bound must not fall to a third of the truth, which is what let busy good
    canaries fail on an ordinary wobble."""
    from shiprail.gates.stats import dispersion, observe_interval

    rng = np.random.default_rng(23)
    rho, n = 0.02, 500
    truth = 1 + rho * (n - 1)
    low = looks = 0
    for _ in range(2_000):
        state: dict[str, Any] = {}
        a, b = 0.2 * (1 - rho) / rho, 0.8 * (1 - rho) / rho
        for _ in range(7):
            c = float(rng.binomial(n, rng.beta(a, b)))
            observe_interval(state, c, n - c)
            if state.get("chi1"):
                looks += 1
                low += dispersion(state, 0.95) < truth / 3
    assert looks == 12_000
    assert low / looks <= 0.002, low


def test_pairs_across_missed_scrapes_read_the_wobble_of_one_look() -> None:
    """A missed scrape makes an interval several looks long, and pods' wobble from look to
    look averages out over it. Read as one look long, such pairs say the pods wobble less
    than they do; read by their length, they estimate the wobble of one look."""
    from shiprail.gates.stats import _identifying, observe_interval

    rng = np.random.default_rng(11)
    rho, p, per_look = 0.02, 0.3, 400
    ticks = [float(np.clip(rng.normal(p, math.sqrt(rho * p * (1 - p))), 0.0, 1.0)) for _ in range(6000)]

    def estimate(by_length: bool) -> float:
        state: dict[str, Any] = {}
        i = 0
        while i < len(ticks):
            length = int(rng.choice([1, 1, 2, 3]))  # a third of the scrapes missed
            shares = ticks[i : i + length]
            canary = float(sum(rng.binomial(per_look, s) for s in shares))
            total = per_look * len(shares)
            observe_interval(state, canary, total - canary, float(len(shares)) if by_length else 1.0)
            i += length
        chi, identified, m = _identifying(state["chi1"])
        return (chi - m) / identified

    assert estimate(by_length=True) == pytest.approx(rho, rel=0.2)
    assert estimate(by_length=False) < 0.75 * rho
