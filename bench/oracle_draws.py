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

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr

from bench.streams import Scenario, _factor

if TYPE_CHECKING:
    from bench.oracle import Oracle


def powers(
    oracle: Oracle, s: Scenario, bound: float | None, upto: int, runs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The ticks the oracle reads before tick `upto` (0-based, as `Oracle.layout` has them)
    and its test's power with the data up to each: the share of `runs` draws under the
    truth beyond the (1 − α) quantile of as many under the null. `bound` is the latency
    bound in ms, None for an error cell."""
    t, requests, used = oracle.layout(s)
    ticks = np.flatnonzero(used[:upto])
    if not len(ticks):
        return ticks, np.zeros(0)
    if bound is not None:
        tolerated = np.full(len(ticks), 1 + oracle.latency_tolerance)
        null = latency_statistic(s, oracle, bound, requests[:, ticks], tolerated, runs, rng)
        slower = _factor(s, s.latency_factor, t)[ticks]
        truth = latency_statistic(s, oracle, bound, requests[:, ticks], slower, runs, rng)
    else:
        null = error_statistic(s, oracle, requests[:, ticks], None, runs, rng)
        worse = _factor(s, s.error_factor, t)[ticks]
        truth = error_statistic(s, oracle, requests[:, ticks], worse, runs, rng)
    critical = np.quantile(null, 1 - oracle.alpha, axis=0)
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
) -> np.ndarray:
    """D = the canary's share slower than (1 + δ)·bound − the baseline's slower than bound,
    over the ticks read so far: runs × ticks. `slower` is the canary's median over the
    baseline's at each tick."""
    n = requests.shape[1]
    counts = rng.poisson(requests[None], size=(runs, 2, n))
    # A shock starting at a tick doubles both medians for it and the next two.
    starts = rng.random((runs, n + 2)) < s.shock_probability
    shocked = starts[:, 2:] | starts[:, 1:-1] | starts[:, :-2]
    median = s.latency_median_ms * _gamma(rng, s.dispersion / 3, (runs, n)) * np.where(shocked, 2.0, 1.0)
    arms = median[:, None] * _gamma(rng, s.dispersion / 6, (runs, 2, n))
    arms[:, 0] *= slower
    at = np.array([bound * (1 + oracle.latency_tolerance), bound])[None, :, None]
    beyond = 1.0 - ndtr((np.log(at) - np.log(arms)) / s.latency_sigma)
    slow = rng.binomial(counts, beyond)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.cumsum(slow, axis=2) / np.cumsum(counts, axis=2)
    statistic: np.ndarray = np.nan_to_num(shares[:, 0] - shares[:, 1], nan=0.0)
    return statistic


def error_statistic(
    s: Scenario,
    oracle: Oracle,
    requests: np.ndarray,
    worse: np.ndarray | None,
    runs: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """D = the canary's share of errors − (1 + δ)× the baseline's, over the ticks read so
    far: runs × ticks. `worse` is the canary's rate over the baseline's per tick; None
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
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.cumsum(errors, axis=2) / np.cumsum(counts, axis=2)
    statistic: np.ndarray = np.nan_to_num(shares[:, 0] - tolerated * shares[:, 1], nan=0.0)
    return statistic


def _gamma(rng: np.random.Generator, cv: float, shape: tuple[int, ...]) -> np.ndarray:
    if cv <= 0:
        return np.ones(shape)
    k = 1.0 / cv**2
    result: np.ndarray = rng.gamma(k, 1.0 / k, size=shape)
    return result
