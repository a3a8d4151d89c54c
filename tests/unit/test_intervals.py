"""The histogram's per-interval test: a t-test on each interval's probit difference of shares."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate, stats

from shiprail.gates.intervals import log_t_bayes_factor, weigh_intervals
from shiprail.gates.sequential import Key, Reading, mixture


def _sums(values: Any) -> list[float]:
    """[count, Σℓ, Σℓd, Σℓd²] of observations with ℓ = 1."""
    d = np.asarray(values, dtype=float)
    return [float(len(d)), float(len(d)), float(d.sum()), float((d * d).sum())]


def _by_integration(before: Any, since: Any, scale: float, earlier: Any = ()) -> float:
    """The Bayes factor from its definition: likelihood of both parts under a mean δ·s since
    the origin (δ half-normal), over the likelihood under a mean 0, each integrated over
    the scale s with ds/s; the part before (and an earlier block, a step before) only tells
    the scale, each about its own mean."""
    pre = np.asarray(before, dtype=float)
    post = np.asarray(since, dtype=float)
    old = np.asarray(earlier, dtype=float)
    rss_pre = float(((pre - pre.mean()) ** 2).sum()) if len(pre) else 0.0
    rss_pre += float(((old - old.mean()) ** 2).sum()) if len(old) else 0.0
    nu_pre = max(len(pre) - 1, 0) + max(len(old) - 1, 0)

    def likelihood(s: float, mu: float) -> float:
        return float(
            s ** -(nu_pre + len(post)) * math.exp(-(rss_pre + ((post - mu) ** 2).sum()) / (2 * s * s))
        )

    def h1(s: float) -> float:
        inner = integrate.quad(lambda d: 2 * stats.norm.pdf(d, 0, scale) * likelihood(s, d * s), 0, np.inf)[0]
        return inner / s

    h0 = integrate.quad(lambda s: likelihood(s, 0.0) / s, 1e-3, 30, limit=200)[0]
    return integrate.quad(h1, 1e-3, 30, limit=200)[0] / h0


@pytest.mark.parametrize(
    ("before", "since", "scale"),
    [
        ([0.1, -0.3, 0.2, 0.0, -0.1], [0.8, 0.5, 1.1], 1.0),
        ([0.4, 0.1, 0.3], [-0.2, 0.1], 4.0),
        ([], [0.5, 0.9], 1.0),
    ],
)
def test_the_t_bayes_factor_is_the_integral_it_claims(
    before: list[float], since: list[float], scale: float
) -> None:
    closed = math.exp(float(log_t_bayes_factor(_sums(before), _sums(since), scale)[0]))
    assert closed == pytest.approx(_by_integration(before, since, scale), rel=2e-3)


def _earlier(values: list[float]) -> list[float]:
    """[residual about its own mean, degrees of freedom] of a block, as a step hands it on."""
    d = np.asarray(values, dtype=float)
    return [float(((d - d.mean()) ** 2).sum()), float(len(d) - 1)]


@pytest.mark.parametrize(
    ("before", "since", "earlier"),
    [
        ([0.1, -0.3, 0.2], [0.8, 0.5, 1.1], [1.3, 0.9, 1.6, 1.1, 1.2]),
        ([], [0.5, 0.9], [-0.4, 0.2, 0.1, -0.2]),
    ],
)
def test_a_block_from_the_step_before_counts_as_more_of_the_scale(
    before: list[float], since: list[float], earlier: list[float]
) -> None:
    """The earlier block only tells the scale, about its own mean (a step before may have had
    another level): its residual and degrees of freedom join the part before the origin."""
    closed = math.exp(float(log_t_bayes_factor(_sums(before), _sums(since), 4.0, [_earlier(earlier)])[0]))
    assert closed == pytest.approx(_by_integration(before, since, 4.0, earlier), rel=2e-3)
    without = math.exp(float(log_t_bayes_factor(_sums(before), _sums(since), 4.0)[0]))
    assert closed != pytest.approx(without, rel=1e-2)


def test_a_block_from_the_step_before_keeps_the_e_value() -> None:
    """Under the null, with a step before of the same scale (at another level), the running
    maximum passes 1/α at most α of the time."""
    rng = np.random.default_rng(8)
    alpha, runs, crossed = 0.05, 3000, 0
    for _ in range(runs):
        earlier = _earlier(list(rng.normal(-0.5, 2.0, 25)))
        values = rng.normal(0.0, 2.0, 30)
        since = np.array([_sums(values[: k + 1]) for k in range(30)])
        logs = log_t_bayes_factor(np.zeros((30, 4)), since, 4.0, np.tile(earlier, (30, 1)))
        crossed += float(np.max(logs)) >= math.log(1 / alpha)
    assert crossed / runs <= alpha


@pytest.mark.parametrize("spread", [0.01, 100.0])
def test_the_t_bayes_factor_is_an_e_value_whatever_the_scale(spread: float) -> None:
    """Under the null, the running maximum over a test's looks passes 1/α at most α of the
    time (Ville), with the scale learnt from the data before the origin and since."""
    rng = np.random.default_rng(3)
    alpha, runs, crossed = 0.05, 3000, 0
    for _ in range(runs):
        pre = _sums(rng.normal(0.3, spread, 8))  # its own mean: only the scale counts
        values = rng.normal(0.0, spread, 30)
        since = np.array([_sums(values[: k + 1]) for k in range(30)])
        best = float(np.max(log_t_bayes_factor(np.tile(pre, (30, 1)), since, 4.0)))
        crossed += best >= math.log(1 / alpha)
    assert crossed / runs <= alpha


def test_a_restart_reads_the_scale_from_before_its_origin() -> None:
    """Three intervals a clear step above twenty quiet ones: with the quiet intervals' scale
    the restart is sure at once; with only its own three it cannot be."""
    rng = np.random.default_rng(4)
    quiet, step = rng.normal(0.0, 0.2, 20), rng.normal(1.0, 0.2, 3)
    informed = float(log_t_bayes_factor(_sums(quiet), _sums(step), 4.0)[0])
    alone = float(log_t_bayes_factor([0.0] * 4, _sums(step), 4.0)[0])
    assert informed > math.log(1e5) and alone < math.log(100)


def _far_bound_readings(rng: np.random.Generator, looks: int) -> list[Reading]:
    """A bound almost no request is slower than, but for shocks in which both arms are: the
    same distribution in each arm, ten times the baseline's traffic."""
    canary, baseline = np.zeros(2), np.zeros(2)
    readings = []
    for look in range(looks):
        share = 0.2 if look % 7 == 3 else 1e-5
        n = rng.poisson([400, 4000])
        canary += [rng.binomial(n[0], share), n[0]]
        baseline += [rng.binomial(n[1], share), n[1]]
        readings.append(Reading(list(canary), list(baseline), {"far": Key(((0, 1.0),), 0)}))
    return readings


def test_intervals_are_chosen_on_the_pooled_share_not_the_canarys() -> None:
    """With no slow request in either arm, the canary's share of 0 of n reads higher on the
    probit scale than the baseline's, having fewer requests: an interval chosen because the
    share so far looked usable would pile that lean up into evidence. Judged on the interval's
    pooled share, only the shocks are used, and a canary no slower never looks slower."""
    rng = np.random.default_rng(6)
    memory: dict[str, Any] = {}
    for look, reading in enumerate(_far_bound_readings(rng, 60), start=1):
        weighing = weigh_intervals(memory, reading, at=10.0 * look, interval=10.0, planned_looks=60)
        assert mixture(weighing.tests, 60) < 1
    used = memory["keys"]["far"]["sums"][0]
    assert 5 <= used <= 9  # the shocks' intervals, one look in seven


def _lognormal_histograms(
    rng: np.random.Generator, n: int, factor: float, sigma: float = 0.8
) -> tuple[list[float], list[float]]:
    """One interval's requests slower than each bound, canary then baseline, `n` each, the
    canary's median `factor`× the baseline's 60 ms."""
    from scipy.special import ndtr

    slower = []
    for median in (60 * factor, 60.0):
        cdf = ndtr((np.log(_BOUNDS) - math.log(median)) / sigma)
        cells = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
        within = np.cumsum(rng.multinomial(n, cells / cells.sum()))[:-1]
        slower.append([float(n - x) for x in within])
    return slower[0], slower[1]


_BOUNDS = np.array([5, 10, 25, 50, 75, 100, 250, 500, 750, 1000], dtype=float)


def test_the_bounds_read_together_are_surer_than_any_one() -> None:
    """Both arms alike, binomial noise only: the bounds' weighted mean stays between the
    bounds' own differences (its weights are never negative), its variance is what
    `_shift` says within a fifth, and it is at most ¾ of the surest single bound's."""
    from shiprail.gates.intervals import _pooled, _probit_difference, _shift, _usable

    rng = np.random.default_rng(8)
    n = 300.0
    means, claimed, singles = [], [], {}
    for _ in range(3000):
        canary, baseline = _lognormal_histograms(rng, int(n), 1.0)
        read = []
        for j, (c, b) in enumerate(zip(canary, baseline, strict=True)):
            pooled = _pooled((c, b), (n, n))
            if pooled is not None and _usable(pooled, (n, n)):
                d = _probit_difference((c, b), (n, n), pooled)
                read.append((d, pooled))
                singles.setdefault(j, []).append(d)
        d, variance = _shift(read, (n, n))
        assert min(x for x, _ in read) - 1e-12 <= d <= max(x for x, _ in read) + 1e-12
        means.append(d)
        claimed.append(variance)
    together = float(np.var(means))
    assert together == pytest.approx(float(np.mean(claimed)), rel=0.2)
    surest = min(float(np.var(x)) for x in singles.values() if len(x) > 2500)
    assert together <= 0.75 * surest


def _shifted_readings(rng: np.random.Generator, looks: int, start: int, factor: float) -> list[Reading]:
    """A busy service whose pods do not wobble, its canary `factor`× slower from `start`,
    read with the tolerance of 10 % the way the gate reads it (each bound's canary count
    at 1.1× it, between its bounds)."""
    from shiprail.gates.compare import _histogram_keys

    canary, baseline = np.zeros(len(_BOUNDS) + 1), np.zeros(len(_BOUNDS) + 1)
    readings = []
    for look in range(looks):
        c, b = _lognormal_histograms(rng, 200, factor if look >= start else 1.0)
        canary += [*c, 200]
        baseline += [*b, 200]
        names = [f"{x / 1000:g}" for x in _BOUNDS]
        within = {name: canary[-1] - canary[j] for j, name in enumerate(names)}
        keys, _ = _histogram_keys(names, within, canary[-1], 0.1)
        readings.append(Reading(list(canary), list(baseline), keys))
    return readings


def _deciding_look(readings: list[Reading], shift_part: float, monkeypatch: pytest.MonkeyPatch) -> int:
    import shiprail.gates.intervals as intervals

    monkeypatch.setattr(intervals, "SHIFT_PART", shift_part)
    memory: dict[str, Any] = {}
    for look, reading in enumerate(readings, start=1):
        weighing = weigh_intervals(memory, reading, at=10.0 * look, interval=10.0, planned_looks=60)
        if mixture(weighing.tests, 60) >= 1e4:
            return look
    return len(readings) + 1


def test_a_shift_of_the_whole_distribution_is_caught_sooner_read_at_every_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A canary 1.4× slower from look 20, 200 requests an interval in each arm and pods that
    do not wobble: reading the bounds together as well decides sooner on average, and on
    more streams than it decides later, than the bounds alone on the same streams."""
    rng = np.random.default_rng(9)
    together, alone = [], []
    for _ in range(12):
        readings = _shifted_readings(rng, 60, 20, 1.4)
        together.append(_deciding_look(readings, 0.5, monkeypatch) - 20)
        alone.append(_deciding_look(readings, 0.0, monkeypatch) - 20)
    assert np.mean(together) < 0.95 * np.mean(alone), (together, alone)
    assert sum(a < b for a, b in zip(together, alone, strict=True)) > sum(
        a > b for a, b in zip(together, alone, strict=True)
    )
