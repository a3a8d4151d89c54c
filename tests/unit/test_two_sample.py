"""The histogram's count test: canary and baseline at each bound as two binomial samples."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import hypergeom

from shiprail.gates.sequential import Key, Reading, mixture, weigh
from shiprail.gates.two_sample import _bound_weights, _kearns_saul, weigh_shares

TILTS = np.array([0.05, 0.3, 1.0, 2.0, 3.0, 5.0])


def _bennett(psi: Any, n_c: float, q: float) -> Any:
    return (np.exp(psi) - 1 - psi) * n_c * q * (1 - q)


@pytest.mark.parametrize("q", [0.001, 0.05, 0.2, 0.5, 0.7, 0.99])
def test_kearns_saul_bounds_the_bernoulli_cgf_and_touches_it_once(q: float) -> None:
    psi = np.linspace(-8, 8, 3201)
    cgf = np.log1p(q * np.expm1(psi)) - q * psi
    bound = _kearns_saul(q) * psi**2
    assert np.all(cgf <= bound + 1e-12)
    if q != 0.5:
        touch = 2 * math.log((1 - q) / q)
        assert math.log1p(q * math.expm1(touch)) - q * touch == pytest.approx(_kearns_saul(q) * touch**2)


@pytest.mark.parametrize(
    ("n_c", "n_b", "slow"), [(1, 4, 2), (3, 20, 12), (8, 8, 3), (20, 200, 180), (5, 60, 1)]
)
def test_the_tilted_count_is_an_e_value_given_the_margins(n_c: int, n_b: int, slow: int) -> None:
    """Under the null the canary's slow count given the interval's margins is hypergeometric:
    the exponent with either bound on its CGF (the test takes the smaller) averages ≤ 1."""
    n = n_c + n_b
    q = slow / n
    support = np.arange(max(0, slow - n_b), min(n_c, slow) + 1)
    pmf = hypergeom(n, slow, n_c).pmf(support)
    for psi in TILTS:
        bound = min(_bennett(psi, n_c, q), psi * psi * n_c * _kearns_saul(q))
        mean = float(np.sum(pmf * np.exp(psi * (support - n_c * q) - bound)))
        assert mean <= 1 + 1e-9, (psi, mean)


def _reading(canary: tuple[float, float], baseline: tuple[float, float]) -> Reading:
    """One bound: slow requests, then traffic, cumulative for each arm."""
    return Reading(list(canary), list(baseline), {"b": Key(((0, 1.0),), 0)})


def test_the_count_test_reads_what_the_fast_requests_say_too() -> None:
    """At a central bound (30 % of the baseline slower, 60 % of the canary) on a quiet
    service, the Poisson form reads only the slow requests, with variance n·q for n·q(1 − q)."""
    shares, poisson = {}, {}
    canary, baseline = np.zeros(2), np.zeros(2)
    for _ in range(30):
        canary += [3, 5]
        baseline += [15, 50]
        reading = _reading((canary[0], canary[1]), (baseline[0], baseline[1]))
        two = weigh_shares(shares, reading, planned_looks=30)
        one = weigh(poisson, reading, max_increase=0.0, prior_strength=10.0, planned_looks=30)
    assert mixture(two.tests, 30) > 1e4
    assert mixture(two.tests, 30) > 30 * mixture(one.tests, 30)


def test_a_canary_no_slower_gathers_no_evidence() -> None:
    memory: dict[str, Any] = {}
    canary, baseline = np.zeros(2), np.zeros(2)
    for _ in range(30):
        canary += [10, 50]
        baseline += [100, 500]
        weighing = weigh_shares(
            memory, _reading((canary[0], canary[1]), (baseline[0], baseline[1])), planned_looks=30
        )
    assert max(weighing.tests.values()) < 1
    assert weighing.strongest is None


def test_a_restart_weighs_the_bounds_where_a_shift_shows() -> None:
    sums = {
        "middle": [0, 50, 0, 0, 0, 100, 0],  # pooled share ½
        "tail": [0, 2, 0, 0, 0, 100, 0],  # 2 %
        "all slow": [0, 99.9, 0, 0, 0, 100, 0],
        "none slow": [0, 0, 0, 0, 0, 100, 0],
    }
    weights = _bound_weights(sums)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["middle"] > weights["tail"] > weights["all slow"] > 0
    assert "none slow" not in weights
    # Before any request, every bound alike.
    empty = {name: [0.0] * 7 for name in sums}
    assert _bound_weights(empty) == {name: 0.25 for name in sums}


def _burst_then_quiet(memory: dict[str, Any], rng: np.random.Generator) -> float:
    """Thirty looks at a tail bound 0.6 % of requests are slower than, then one interval in
    which the canary's pods are slower (17 % of its requests past the bound against the
    baseline's 0.25 %: the interval that rolled back a good canary in the random cells),
    then quiet again. The largest mixture seen."""
    canary, baseline = np.zeros(2), np.zeros(2)
    best = 0.0
    for look in range(1, 41):
        n_c, n_b = 175, 8871
        share_c = 29 / 175 if look == 31 else 0.006
        canary += [rng.binomial(n_c, share_c), n_c]
        baseline += [rng.binomial(n_b, 0.0025 if look == 31 else 0.006), n_b]
        weighing = weigh_shares(
            memory, _reading((canary[0], canary[1]), (baseline[0], baseline[1])), planned_looks=40
        )
        best = max(best, mixture(weighing.tests, 40))
    return best


def test_no_single_interval_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    from shiprail.gates import two_sample

    assert _burst_then_quiet({}, np.random.default_rng(8)) < 100
    # The same stream without the clip: the restart made just before the burst is sure.
    monkeypatch.setattr(two_sample, "CLIP_SPREADS", math.inf)
    assert _burst_then_quiet({}, np.random.default_rng(8)) > 1000


def test_an_interval_a_missed_scrape_made_longer_is_read_as_averaging_the_wobble() -> None:
    """The same interval counts, read once as one look each and once with every other interval
    three looks long: a longer interval holds a third of a look's wobble, so the same spread
    between intervals says the pods wobble more per look, and both count tests divide more."""
    rng = np.random.default_rng(4)
    steps = []
    for _ in range(60):
        odds = math.exp(rng.normal(math.log(0.25), 0.3))  # the pods' wobble on the canary's odds
        c_n, b_n = 400.0, 4000.0
        steps.append((float(rng.binomial(400, odds / (1 + odds))), c_n, float(rng.binomial(4000, 0.2)), b_n))

    def dispersion(long_every_other: bool) -> tuple[float, float]:
        shares: dict[str, Any] = {}
        poisson: dict[str, Any] = {}
        canary, baseline = np.zeros(2), np.zeros(2)
        for i, (c, c_n, b, b_n) in enumerate(steps):
            canary += [c, c_n]
            baseline += [b, b_n]
            length = 3.0 if long_every_other and i % 2 else 1.0
            reading = _reading((canary[0], canary[1]), (baseline[0], baseline[1]))
            two = weigh_shares(shares, reading, planned_looks=60, length=length)
            one = weigh(
                poisson, reading, max_increase=0.0, prior_strength=10.0, planned_looks=60, length=length
            )
        return two.dispersion["b"], one.dispersion["b"]

    as_one_look, as_read = dispersion(False), dispersion(True)
    assert as_read[0] > 1.2 * as_one_look[0] > 1.2
    assert as_read[1] > 1.2 * as_one_look[1] > 1.2


def _allocations(buckets: list[int], n_c: int) -> Any:
    """Every way the canary can take n_c of the pooled requests in `buckets` (fastest first),
    with its multivariate hypergeometric probability."""
    from itertools import product

    total = math.comb(sum(buckets), n_c)
    for taken in product(*(range(min(k, n_c) + 1) for k in buckets)):
        if sum(taken) == n_c:
            yield taken, math.prod(math.comb(k, y) for k, y in zip(buckets, taken, strict=True)) / total


@pytest.mark.parametrize(
    ("buckets", "n_c"),
    [((3, 2, 4, 1), 2), ((1, 5, 2, 2), 4), ((6, 1, 1, 3), 5), ((2, 2, 2, 2), 1), ((0, 4, 4, 1), 3)],
)
def test_the_bounds_read_together_are_an_e_value_given_the_margins(
    buckets: tuple[int, ...], n_c: int
) -> None:
    """A canary exactly as slow as tolerated draws its requests from the pooled ones without
    replacement: its score sum, tilted with the score's own CGF, averages ≤ 1 at every tilt,
    and that CGF is below Bennett's and Kearns & Saul's bounds for a share of the same mean
    and variance."""
    from shiprail.gates.two_sample import _TILTS, _shift

    n = sum(buckets)
    bounds = [str(i) for i in range(1, len(buckets))]  # bound i: slower than bucket i − 1
    pooled = {b: sum(buckets[int(b) :]) / n for b in bounds}
    means = np.zeros(len(_TILTS))
    cgf: list[float] = []
    for taken, p in _allocations(list(buckets), n_c):
        counts = {
            b: (float(sum(taken[int(b) :])), float(sum(buckets[int(b) :]) - sum(taken[int(b) :])))
            for b in bounds
        }
        shift = _shift(counts, pooled, n)
        assert shift is not None
        (x, b_sum), (variance, _), cgf = shift
        q = (x + b_sum) / n
        means += p * np.exp(np.array(_TILTS) * (x - n_c * q) - n_c * np.array(cgf))
    assert np.all(means <= 1 + 1e-9), means
    psi = np.array(_TILTS)
    assert np.all(
        np.array(cgf) <= np.minimum((np.exp(psi) - 1 - psi) * variance, psi * psi * _kearns_saul(q)) + 1e-12
    )
    # Not a bound so loose it could not fail: the largest tilt's average is near 1.
    assert means.max() > 0.5


def _quiet_slowdown(memory: dict[str, Any], rng: np.random.Generator, factor: float) -> tuple[int, Any]:
    """A quiet service (4 canary requests a look, 40 baseline) on the client libraries'
    default buckets, the canary `factor`× slower from the start. The first look the count
    test's mixture reaches 100 (81 if never), and the weighing there."""
    les = np.array([5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000], dtype=float)
    keys = {f"{le:g}": Key(((j, 1.0),), j) for j, le in enumerate(les)}
    canary, baseline = np.zeros(len(les) + 1), np.zeros(len(les) + 1)
    for look in range(1, 81):
        for arm, n, median in ((canary, 4, 100 * factor), (baseline, 40, 100.0)):
            latency = median * np.exp(rng.normal(0, 0.6, n))
            arm += [*(latency > les[:, None]).sum(axis=1), n]
        weighing = weigh_shares(memory, Reading(list(canary), list(baseline), keys), planned_looks=80)
        if mixture(weighing.tests, 80) >= 100:
            return look, weighing
    return 81, weighing


def test_a_quiet_service_s_slowdown_is_caught_sooner_with_the_bounds_read_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shiprail.gates import two_sample

    together = [_quiet_slowdown({}, np.random.default_rng(seed), 1.6)[0] for seed in range(12)]
    monkeypatch.setattr(two_sample, "SHIFT_PART", 0.0)
    apart = [_quiet_slowdown({}, np.random.default_rng(seed), 1.6)[0] for seed in range(12)]
    assert max(together) <= 80
    assert np.mean(together) < 0.85 * np.mean(apart)
    assert sum(t < a for t, a in zip(together, apart, strict=True)) > sum(
        t > a for t, a in zip(together, apart, strict=True)
    )


def test_the_verdict_names_a_bound_never_the_bounds_read_together() -> None:
    from shiprail.gates.two_sample import SHIFT

    memory: dict[str, Any] = {}
    look, weighing = _quiet_slowdown(memory, np.random.default_rng(1), 2.0)
    assert look <= 80 and SHIFT in memory["bounds"]
    assert weighing.strongest is not None and weighing.strongest != SHIFT
    assert float(weighing.strongest) > 0
