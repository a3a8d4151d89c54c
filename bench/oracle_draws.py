"""The oracle's statistic drawn as the stream generator draws a stream, and its test's power.

`bench.oracle` models its statistic as normal, with the generator's common-mode noise
counted to first order. Where a tick holds a few requests a bound's share is far from
normal, and that model claims power the test does not have: on quiet latency cells it put
the horizon where the test rejected in two draws of three. Drawing the statistic itself
many times, under the null and under the truth, gives the test's real power at every
horizon: the share of draws under the truth beyond the null's (1 − α) quantile. That is
the yardstick's definition, a fixed-horizon test with 99 % power, taken literally.

On a latency cell: Poisson requests, the shared wobble with cv = dispersion/3, shocks
doubling both medians for three ticks, each arm's own wobble with cv = dispersion/6 and the
regression on the canary's median, at a bucket bound b (the canary read at (1 + δ)·b); the
null has the canary exactly (1 + δ)× slower. On an error cell: Poisson requests, both arms'
rates times the shared wobble (cv = dispersion) and the shocks, each arm's own wobble
(cv = dispersion/2) and the regression on the canary's rate; the null has the canary's
rate exactly (1 + δ)× the baseline's. These are `bench.streams.generate`'s draws.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import ndtr

from bench.streams import BUCKETS_MS, TICK, Scenario, _factor

if TYPE_CHECKING:
    from bench.oracle import Oracle


def powers(
    oracle: Oracle, s: Scenario, bound: float | None, upto: int, runs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The ticks the oracle reads before tick `upto` (0-based, as `Oracle.layout` has them)
    and its test's power with the data up to each: the share of `runs` draws under the
    truth beyond the (1 − α) quantile of as many under the null. `bound` is the latency
    bound in ms, None for an error cell. An oracle that learns its noise also draws the
    ticks before the regression it reads its scale from (`_before`)."""
    t, requests, used = oracle.layout(s)
    ticks = np.flatnonzero(used[:upto])
    if not len(ticks):
        return ticks, np.zeros(0)
    read = np.concatenate([_before(oracle, s, t), ticks])
    learned = oracle.noise == "learned"
    if bound is not None:
        tolerated = np.full(len(read), 1 + oracle.latency_tolerance)
        slower = _factor(s, s.latency_factor, t)[read]
        # The null a histogram's reader must hold: a tail for which the chord is exact (a
        # power law), where the canary (1 + δ)× slower has the baseline's share.
        null = (
            None
            if learned
            else latency_statistic(s, oracle, bound, requests[:, read], tolerated, runs, rng, "exact")
        )
        truth = latency_statistic(s, oracle, bound, requests[:, read], slower, runs, rng)
    else:
        worse = _factor(s, s.error_factor, t)[read]
        null = None if learned else error_statistic(s, oracle, requests[:, read], None, runs, rng)
        truth = error_statistic(s, oracle, requests[:, read], worse, runs, rng)
    # A test that learns its noise has Student's critical value, its statistic's excess over
    # it; one that knows it, the null's (1 − α) quantile drawn.
    critical = np.zeros(len(ticks)) if null is None else np.quantile(null, 1 - oracle.alpha, axis=0)
    rejected: np.ndarray = np.mean(truth > critical[None], axis=0)
    return ticks, rejected


def latency_statistic(
    s: Scenario,
    oracle: Oracle,
    bound: float,
    requests: np.ndarray,
    slower: np.ndarray,
    runs: int,
    rng: np.random.Generator,
    reading: str | None = None,
) -> np.ndarray:
    """The oracle's statistic for "the canary's share slower than (1 + δ)·bound exceeds the
    baseline's slower than bound", over the ticks read so far: runs × the ticks since the
    regression (`_statistic`). `slower` is the canary's median over the baseline's at each
    tick read. On bucket counts (`reading`, by default the oracle's, "buckets") the
    canary's share is the chord between the bucket bounds around (1 + δ)·bound (`_chord`)."""
    n = requests.shape[1]
    counts = rng.poisson(requests[None], size=(runs, 2, n))
    # A shock starting at a tick doubles both medians for it and the next two.
    starts = rng.random((runs, n + 2)) < s.shock_probability
    shocked = starts[:, 2:] | starts[:, 1:-1] | starts[:, :-2]
    median = s.latency_median_ms * _gamma(rng, s.dispersion / 3, (runs, n)) * np.where(shocked, 2.0, 1.0)
    arms = median[:, None] * _gamma(rng, s.dispersion / 6, (runs, 2, n))
    arms[:, 0] *= slower
    x = bound * (1 + oracle.latency_tolerance)
    if (reading or oracle.reading) == "exact":
        at = np.array([x, bound])[None, :, None]
        slow = rng.binomial(counts, _slower_than(at, arms, s))
        return _statistic(oracle, s, slow[:, 0], counts[:, 0], slow[:, 1], counts[:, 1], 1.0, _share)
    low, high = _around(x)
    # The canary's requests slower than the bound below x, and of those the ones slower
    # than the bound above: a histogram's two cumulative buckets.
    p_low, p_high = _slower_than(low, arms[:, 0], s), _slower_than(high, arms[:, 0], s)
    slow_low = rng.binomial(counts[:, 0], p_low)
    with np.errstate(divide="ignore", invalid="ignore"):
        slow_high = rng.binomial(slow_low, np.nan_to_num(np.clip(p_high / p_low, 0.0, 1.0)))
    slow_b = rng.binomial(counts[:, 1], _slower_than(bound, arms[:, 1], s))
    canary = np.stack([slow_low, slow_high])
    read = functools.partial(_chord_share, low=low, high=high, x=x)
    return _statistic(oracle, s, canary, counts[:, 0], slow_b, counts[:, 1], 1.0, read)


def error_statistic(
    s: Scenario,
    oracle: Oracle,
    requests: np.ndarray,
    worse: np.ndarray | None,
    runs: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The oracle's statistic for "the canary's share of errors exceeds (1 + δ)× the
    baseline's", over the ticks read so far: runs × the ticks since the regression
    (`_statistic`). `worse` is the canary's rate over the baseline's per tick read; None
    draws the null, the canary's rate exactly (1 + δ)× the baseline's."""
    n = requests.shape[1]
    tolerated = 1 + oracle.error_tolerance
    counts = rng.poisson(requests[None], size=(runs, 2, n))
    # A shock starting at a tick multiplies both arms' rates for it and the next two.
    starts = rng.random((runs, n + 2)) < s.shock_probability
    shocked = starts[:, 2:] | starts[:, 1:-1] | starts[:, :-2]
    common = _gamma(rng, s.dispersion, (runs, n)) * np.where(shocked, s.shock_factor, 1.0)
    rates = s.base_error_rate * common[:, None] * _gamma(rng, s.dispersion / 2, (runs, 2, n))
    rates[:, 0] *= tolerated if worse is None else worse
    errors = rng.binomial(counts, np.clip(rates, 0.0, 1.0))
    return _statistic(oracle, s, errors[:, 0], counts[:, 0], errors[:, 1], counts[:, 1], tolerated, _share)


def _before(oracle: Oracle, s: Scenario, t: np.ndarray) -> np.ndarray:
    """The ticks a test that learns its noise reads its scale from besides those since the
    regression: whole ticks from the canary's warm-up's end to the regression's start, as
    `Oracle._z` counts them. None for a test that knows its noise."""
    if oracle.noise == "known":
        return np.zeros(0, dtype=int)
    return np.flatnonzero((t >= s.warmup) & (t + TICK <= s.regression_start))


def _statistic(
    oracle: Oracle,
    s: Scenario,
    canary: np.ndarray,
    n_c: np.ndarray,
    slow_b: np.ndarray,
    n_b: np.ndarray,
    tolerated: float,
    share: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """The test's statistic at each horizon since the regression, runs × ticks. Known
    noise: D = the canary's share − tolerated × the baseline's over the ticks since the
    regression. Learned: how far a t statistic of the per-tick differences since, weighed by
    each tick's requests, its scale read from those and the ticks before (`_before`), each
    part about its own mean as `Oracle._z` has it, lies beyond Student's critical value. `share(bad, requests)` reads the canary's
    share from its bad requests over the given requests (the chord on bucket counts); the
    baseline's is read at its bound as it is."""
    if oracle.noise == "known":
        with np.errstate(divide="ignore", invalid="ignore"):
            d = share(np.cumsum(canary, axis=-1), np.cumsum(n_c, axis=-1)) - tolerated * _share(
                np.cumsum(slow_b, axis=-1), np.cumsum(n_b, axis=-1)
            )
        result: np.ndarray = np.nan_to_num(d, nan=0.0)
        return result
    first = len(_before(oracle, s, oracle.layout(s)[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.nan_to_num(share(canary, n_c) - tolerated * _share(slow_b, n_b), nan=0.0)
        w = np.where((n_c > 0) & (n_b > 0), 1.0 / (1.0 / n_c + 1.0 / n_b), 0.0)
    d = np.where(w > 0, d, 0.0)
    # Before the regression: one mean and residual per draw.
    wb, db = w[:, :first], d[:, :first]
    weight_b = wb.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_b = np.where(weight_b > 0, (wb * db).sum(axis=1) / weight_b, 0.0)
    rss_b = (wb * (db - mean_b[:, None]) ** 2).sum(axis=1)
    seen_b = (wb > 0).sum(axis=1)
    # Since: cumulated, one test per horizon.
    ws, ds = w[:, first:], d[:, first:]
    weight, first_moment, second = (np.cumsum(x, axis=1) for x in (ws, ws * ds, ws * ds * ds))
    seen = np.cumsum(ws > 0, axis=1)
    nu = seen - 1 + np.maximum(seen_b - 1, 0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = first_moment / weight
        rss = np.maximum(second - first_moment * mean, 0.0) + rss_b[:, None]
        excess = mean * np.sqrt(weight * nu / rss) - _t_quantile(1 - oracle.alpha, nu)
    # No test where the scale cannot be read yet: it never rejects there.
    result: np.ndarray = np.where((nu >= 1) & (rss > 0) & (weight > 0) & np.isfinite(excess), excess, -np.inf)
    return result


def _t_quantile(level: float, nu: np.ndarray) -> np.ndarray:
    """Student's quantile at each entry's degrees of freedom (∞ below one)."""
    from scipy.stats import t as student

    whole = np.maximum(nu, 0).astype(int)
    table = np.concatenate([[np.inf], student.ppf(level, np.arange(1, int(whole.max(initial=0)) + 1))])
    result: np.ndarray = table[whole]
    return result


def _share(bad: np.ndarray, requests: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        result: np.ndarray = bad / requests
    return result


def _chord_share(
    canary: np.ndarray, requests: np.ndarray, *, low: float, high: float, x: float
) -> np.ndarray:
    """The canary's share slower than x read from its shares slower than the bucket bounds
    around it, as `gates.stats.interpolate_survival` reads it (vectorised)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s_low, s_high = canary[0] / requests, canary[1] / requests
        u = (math.log(x) - math.log(low)) / (math.log(high) - math.log(low))
        chord = np.exp(np.log(s_low) + u * (np.log(s_high) - np.log(s_low)))
    result: np.ndarray = np.where((s_low <= s_high) | (s_high <= 0.0), s_high, chord)
    return result


def _around(x: float) -> tuple[float, float]:
    """The bucket bounds below and above x; `Oracle` reads on bucket counts only where x
    lies between two (`bench.oracle._chord`)."""
    above = next(i for i, b in enumerate(BUCKETS_MS) if b >= x)
    return float(BUCKETS_MS[above - 1]), float(BUCKETS_MS[above])


def _slower_than(at: Any, median: np.ndarray, s: Scenario) -> np.ndarray:
    result: np.ndarray = 1.0 - ndtr((np.log(at) - np.log(median)) / s.latency_sigma)
    return result


def _gamma(rng: np.random.Generator, cv: float, shape: tuple[int, ...]) -> np.ndarray:
    if cv <= 0:
        return np.ones(shape)
    k = 1.0 / cv**2
    result: np.ndarray = rng.gamma(k, 1.0 / k, size=shape)
    return result
