"""The information floor: how soon a test that knew the truth in advance could decide.

The oracle is a fixed-horizon one-sided z-test at the gates' level α with 99 % power. It
knows the scenario's true effect size and noise (Poisson counts plus the per-arm
over-dispersion the stream generator draws), so it needs no sequential correction and no
estimate of anything: it waits for exactly the evidence that test needs and decides. It
tests the same null the gates test (the tolerated degradation): on error counts, and on a
latency histogram the baseline's share slower than a bucket bound b against the canary's
share slower than (1 + δ)·b, and it ignores the canary's warm-up, as the gates'
`initial_delay` does. No sequential test can beat it on average; the benchmark reports
every strategy's median time to detect as a multiple of its horizon.

In latency the yardstick (`reading="exact"`) is stricter than the data allow: (1 + δ)·b is
never a bucket bound, and a histogram holds the canary's share there only between the
bounds around it. The best a valid test can read there, for any tail that falls at least
as fast as a power law, is the chord of log share against log latency between those bounds
(`gates.stats.interpolate_survival`, which the gates use). `reading="buckets"` is the same
oracle reading that chord of the canary's true shares, with their wobble: how soon a test
that knew everything but saw only the histogram could decide (`bench.oracle_buckets`).

Its horizon is where its test has that power as the generator draws the streams
(`power="drawn"`, `bench.oracle_draws`): the share of draws under the truth beyond the
null's 99th percentile reaches 99 %. A normal model of the statistic picks the bounds worth
drawing (`power="modelled"` is it alone); alone it overstates the power where a tick holds
a few requests, and put quiet cells' horizons where the test rejected in two draws of
three. Every reading and noise below is drawn the same way.

`noise="learned"` takes the noise from it: a t-test of the per-tick differences, weighed by
each tick's requests, that reads its scale from the ticks before the regression (from the
warm-up's end) and the ticks since, each part about its own mean; drawn, its critical value
is the drawn null's, and modelled, it has the noncentral t's power. It is how soon a test that knew the onset, the bound
and the effect but not the noise could decide (`bench.oracle_buckets` reports it).

Common-mode noise (both arms' rates or latencies moving together, and the shocks) cancels
under the null: there the canary's rate is (1 + δ)× the baseline's and a common multiplier
moves both sides of the difference alike, and its share slower than (1 + δ)·b sits at the
same point of its distribution as the baseline's at b. Under the truth it does not cancel,
and the oracle counts what is left of it, to first order, in its power only. A shock
multiplies both error rates by more than 1, so where the canary is worse it only ever raises
the difference: the lower tail the power is judged on is that of the unshocked ticks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from bench.streams import BUCKETS_MS, TICK, Scenario, _factor, _phi
from shiprail.gates.stats import interpolate_survival

POWER = 0.99
READINGS = ("exact", "buckets")
NOISES = ("known", "learned")
POWERS = ("drawn", "modelled")
# Draws of the statistic under the null and under the truth per bound tried: the null's
# 99th percentile then rests on 50 draws beyond it, and a power of 99 % is read to ±0.15 %.
DRAWS = 5000
# The bounds drawn on a latency cell: those the normal model has deciding first. On a quiet
# cell it ranks them by power it overstates, so more than one is drawn.
CANDIDATES = 4


@dataclass(frozen=True)
class Oracle:
    """The tolerances and level of the gates it is the yardstick for."""

    alpha: float
    error_tolerance: float
    latency_tolerance: float
    # How the canary's share slower than (1 + δ)·b is read: as it is, or as the chord
    # between the bucket bounds around it that a histogram holds.
    reading: str = "exact"
    # Whether the test knows the noise, or reads its scale from the ticks it has seen.
    noise: str = "known"
    # How the horizon's power is found: by drawing the statistic as the generator draws
    # streams (`bench.oracle_draws`), or from the normal model alone (which picks the
    # bounds worth drawing, and overstates the power where a tick holds a few requests).
    power: str = "drawn"

    def __post_init__(self) -> None:
        if self.reading not in READINGS:
            raise ValueError(f"reading must be one of {', '.join(READINGS)}, got {self.reading!r}")
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {self.noise!r}")
        if self.power not in POWERS:
            raise ValueError(f"power must be one of {', '.join(POWERS)}, got {self.power!r}")

    def horizon(self, s: Scenario) -> float | None:
        """Seconds from the regression's start to the end of the data the oracle decides on,
        or None when the step is too short for it to decide at all (or the release is good)."""
        tick = self.horizon_tick(s)
        return None if tick is None else tick * TICK - s.regression_start

    def decision_tick(self, s: Scenario, missing: np.ndarray) -> int | None:
        """The tick at which the oracle decides on one stream: it reads its data through the
        same scrapes as every strategy, so a scrape missed at its horizon makes it wait for
        the next one, as a strategy's look at that moment would find nothing."""
        tick = self.horizon_tick(s)
        if tick is None:
            return None
        seen = np.flatnonzero(~missing[tick - 1 :])
        return tick + int(seen[0]) if len(seen) else None

    def horizon_tick(self, s: Scenario) -> int | None:
        """The first tick k whose data (ticks 0 … k − 1, as a strategy deciding at k has seen)
        gives the oracle its power, or None."""
        return self._decision(s)[0]

    def _decision(self, s: Scenario) -> tuple[int | None, float | None]:
        """The horizon tick and the bound (ms) it is reached at (None for errors)."""
        if s.kind == "good":
            return None, None
        modelled = self._modelled_ticks(s)
        if self.power == "drawn":
            return _drawn(self, s, tuple(sorted(modelled.items(), key=lambda x: (x[1], x[0] or 0.0))))
        if not modelled:
            return None, None
        tick = min(modelled.values())
        if s.kind == "error":
            return tick, None
        t, requests, used = self.layout(s)
        margins = self._latency_margins(s, t, requests, used)
        return tick, max(margins, key=lambda bound: margins[bound][tick - 1])

    def _modelled_ticks(self, s: Scenario) -> dict[float | None, int]:
        """Each bound's first tick with power under the normal model (errors: None's)."""
        t, requests, used = self.layout(s)
        if s.kind == "error":
            margins: dict[float | None, np.ndarray] = {None: self._error_margin(s, t, requests, used)}
        else:
            margins = {bound: m for bound, m in self._latency_margins(s, t, requests, used).items()}
        ticks = {}
        for bound, margin in margins.items():
            # Strictly positive: where both arms' shares are 0 (a bound far out in a narrow
            # distribution) the margin is 0 with no evidence at all, and no test decides there.
            reached = np.flatnonzero(margin > 0)
            if len(reached):
                ticks[bound] = int(reached[0]) + 1
        return ticks

    @staticmethod
    def layout(s: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each tick's start (s), each arm's expected requests in it, and whether the oracle
        reads it (from the regression's start, or the canary's warm-up's end if later)."""
        n = s.ticks
        t = np.arange(n) * TICK
        swing = 0.5 * np.sin(2 * math.pi * t / s.duration) if s.diurnal else np.zeros(n)
        traffic = s.rpm * TICK / 60.0 * (1.0 + swing)
        requests = np.vstack([s.canary_share * traffic, (1 - s.canary_share) * traffic])
        return t, requests, t >= max(s.regression_start, s.warmup)

    def _z(self, s: Scenario, t: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The test's critical value at each horizon, in spreads of its statistic, and how
        many more spreads its mean must clear for 99 % power. Known noise: z_α and z_β.
        Learned: a t-test whose scale is read from the ticks before the regression (from
        the warm-up's end) and the ticks since, each part about its own mean, so ν = n_before
        − 1 + n_since − 1 degrees of freedom, and the noncentrality its power needs."""
        if self.noise == "known":
            z_a, z_b = NormalDist().inv_cdf(1 - self.alpha), NormalDist().inv_cdf(POWER)
            return np.full(len(t), z_a), np.full(len(t), z_b)
        before = int(np.sum((t >= s.warmup) & (t + TICK <= s.regression_start)))
        nu = np.cumsum(used) - 1 + max(before - 1, 0)
        critical, extra = np.full(len(t), np.inf), np.full(len(t), np.inf)
        for i, n in enumerate(nu):
            if n >= 1:
                critical[i], extra[i] = _t_critical(self.alpha, int(n))
        return critical, extra

    def _error_margin(self, s: Scenario, t: np.ndarray, requests: np.ndarray, used: np.ndarray) -> np.ndarray:
        rate_b = np.full(len(t), s.base_error_rate)
        rate_c = np.clip(s.base_error_rate * _factor(s, s.error_factor, t), 0.0, 1.0)
        tolerated = 1 + self.error_tolerance
        # The generator's per-arm gamma noise has cv = dispersion / 2.
        noise = s.dispersion / 2
        # A common multiplier g of both rates moves D by (rate_c − tolerated·rate_b)·Δg. A
        # shock's g > 1 only ever raises D where the canary is worse, so it widens the upper
        # tail, never the lower one the power needs (`bench.oracle_power` checks it).
        shocks = 3 * s.shock_probability * (s.shock_factor - 1) ** 2 if s.shock_factor < 1 else 0.0
        common = s.dispersion**2 + shocks
        return _margin(
            requests,
            Arm(rate_c, rate_c * noise, tolerated * rate_b, tolerated * rate_b * noise, rate_c),
            Arm(rate_b, rate_b * noise, rate_b, rate_b * noise, rate_b),
            tolerated,
            used,
            self._z(s, t, used),
            common,
        )

    def latency_bound(self, s: Scenario) -> float | None:
        """The bucket bound (ms) the oracle decides a latency cell on: the baseline read
        there and the canary at (1 + δ)× it, the one whose test has its power first."""
        return self._decision(s)[1] if s.kind == "latency" else None

    def _latency_margins(
        self, s: Scenario, t: np.ndarray, requests: np.ndarray, used: np.ndarray
    ) -> dict[float, np.ndarray]:
        median_c = s.latency_median_ms * _factor(s, s.latency_factor, t)
        margins = {}
        for bound in BUCKETS_MS:
            x = bound * (1 + self.latency_tolerance)
            z_b = np.full(len(t), (math.log(bound) - math.log(s.latency_median_ms)) / s.latency_sigma)
            share_b, wobble_b = 1.0 - _phi(z_b), _wobble(s, z_b)
            # A common shift of both medians by Δ (in log) moves a share by pdf(z)/σ·Δ.
            baseline = Arm(share_b, wobble_b, share_b, wobble_b, _pdf(z_b) / s.latency_sigma)
            if self.reading == "exact":
                z_c = (np.log(x) - np.log(median_c)) / s.latency_sigma
                share_c, wobble_c, common_c = 1.0 - _phi(z_c), _wobble(s, z_c), _pdf(z_c) / s.latency_sigma
            else:
                chord = _chord(s, x, median_c)
                if chord is None:
                    continue
                share_c, wobble_c, common_c = chord
            canary = Arm(share_c, wobble_c, share_b, wobble_b, common_c)
            common = (s.dispersion / 3) ** 2 + 3 * s.shock_probability * math.log(2) ** 2
            margins[float(bound)] = _margin(
                requests, canary, baseline, 1.0, used, self._z(s, t, used), common
            )
        return margins


@dataclass(frozen=True)
class Arm:
    """An arm's true share of bad requests per tick and its per-tick spread, as it is
    and as the null hypothesis would have it."""

    share: np.ndarray
    spread: np.ndarray
    null_share: np.ndarray
    null_spread: np.ndarray
    common: np.ndarray  # how far the share moves for a unit common-mode shift of both arms


def _chord(s: Scenario, x: float, median: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The canary's share slower than x read as a histogram holds it: the chord of log
    share against log latency between the bucket bounds around x, s = s_lo^(1 − u)·s_hi^u,
    with its per-tick wobble and its move under a common shift, each of which moves
    log s by (1 − u)·dlog s_lo + u·dlog s_hi. None beyond the last bound."""
    above = next((i for i, b in enumerate(BUCKETS_MS) if b >= x), None)
    if above is None or above == 0:
        return None
    low, high = float(BUCKETS_MS[above - 1]), float(BUCKETS_MS[above])
    z_lo = (math.log(low) - np.log(median)) / s.latency_sigma
    z_hi = (math.log(high) - np.log(median)) / s.latency_sigma
    s_lo, s_hi = 1.0 - _phi(z_lo), 1.0 - _phi(z_hi)
    share = np.array([interpolate_survival(low, high, a, b, x) for a, b in zip(s_lo, s_hi, strict=True)])
    u = (math.log(x) - math.log(low)) / (math.log(high) - math.log(low))
    with np.errstate(divide="ignore", invalid="ignore"):
        # d log s per unit shift of the log median (÷ σ), each bound weighed by its place.
        pull = np.nan_to_num((1 - u) * _pdf(z_lo) / s_lo + u * _pdf(z_hi) / s_hi)
    move = share * pull / s.latency_sigma
    return share, move * s.dispersion / 6, move


def _wobble(s: Scenario, z: np.ndarray) -> np.ndarray:
    """An arm's median wobbles with cv = dispersion / 6 (see `streams._histogram`), which
    moves its share slower than a bound z standard units away by pdf(z) · cv / σ."""
    result: np.ndarray = _pdf(z) * (s.dispersion / 6) / s.latency_sigma
    return result


@functools.lru_cache(maxsize=4096)
def _t_critical(alpha: float, nu: int) -> tuple[float, float]:
    """A one-sided t-test's critical value at level α with ν degrees of freedom, and how far
    beyond it the noncentrality must be for 99 % power (∞ where none is in reach)."""
    from scipy.optimize import brentq
    from scipy.stats import nct
    from scipy.stats import t as student

    critical = float(student.ppf(1 - alpha, nu))
    shortfall = lambda lam: float(nct.sf(critical, nu, lam)) - POWER  # noqa: E731
    high = critical + 10.0
    while shortfall(high) < 0:
        high *= 2
        if high > 1e6:
            return critical, math.inf
    return critical, float(brentq(shortfall, critical, high)) - critical


def _pdf(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return result


def _margin(
    requests: np.ndarray,
    canary: Arm,
    baseline: Arm,
    tolerated: float,
    used: np.ndarray,
    z: tuple[np.ndarray, np.ndarray],
    common: float,
) -> np.ndarray:
    """E[D] − z_α·sd₀(D) − z_β·sd₁(D) at each horizon (z at each horizon, `Oracle._z`), for D = p̂_c − tolerated · p̂_b, where
    p̂ is an arm's share of bad requests over the ticks used so far: the fixed-horizon test
    has its power once this is ≥ 0. sd₀ is D's spread under the null, sd₁ under the truth;
    the common-mode part (`common`, the variance of a unit shift) moves D under the truth
    only, since under the null the arms' sensitivities to it are equal."""
    n_c, n_b = requests[0] * used, requests[1] * used
    cn_c, cn_b = np.cumsum(n_c), np.cumsum(n_b)

    def sd(
        share_c: np.ndarray,
        spread_c: np.ndarray,
        share_b: np.ndarray,
        spread_b: np.ndarray,
        shared: np.ndarray | float,
    ) -> np.ndarray:
        var_c = np.cumsum(n_c * share_c * (1 - share_c) + (n_c * spread_c) ** 2) / cn_c**2
        var_b = np.cumsum(n_b * share_b * (1 - share_b) + (n_b * spread_b) ** 2) / cn_b**2
        result: np.ndarray = np.sqrt(var_c + tolerated**2 * var_b + shared)
        return result

    with np.errstate(divide="ignore", invalid="ignore"):
        # What of a common-mode shift D keeps where the arms' sensitivities differ (both
        # arms' traffic keeps the same split, so the canary's weights serve for both).
        shared = np.cumsum((n_c * (canary.common - tolerated * baseline.common)) ** 2) / cn_c**2 * common
        mean = np.cumsum(n_c * canary.share) / cn_c - tolerated * np.cumsum(n_b * baseline.share) / cn_b
        sd0 = sd(canary.null_share, canary.null_spread, baseline.null_share, baseline.null_spread, 0.0)
        sd1 = sd(canary.share, canary.spread, baseline.share, baseline.spread, shared)
        margin = mean - z[0] * sd0 - z[1] * sd1
    result: np.ndarray = np.where(np.isfinite(margin), margin, -np.inf)
    return result


@functools.lru_cache(maxsize=1024)
def _drawn(
    oracle: Oracle, s: Scenario, modelled: tuple[tuple[float | None, int], ...]
) -> tuple[int | None, float | None]:
    """The first tick at which the oracle's test, drawn as the generator draws streams,
    rejects in 99 % of draws, and the bound it does so at: over the bounds the normal model
    has deciding first (`CANDIDATES`, errors their one statistic), each drawn up to three
    times as long after the regression's start as the model says it needs, then to the
    step's end if that was not enough. Seeded by the cell, so a cell has one horizon."""
    from bench.oracle_draws import powers

    read = np.flatnonzero(oracle.layout(s)[2])
    if not len(read) or not modelled:
        return None, None
    rng, first = np.random.default_rng([s.seed, 2]), int(read[0])
    best: tuple[int | None, float | None] = (None, None)
    for bound, tick in modelled[:CANDIDATES]:
        end = s.ticks if best[0] is None else best[0] - 1
        for upto in (min(first + 3 * (tick - first) + 6, end), end):
            ticks, power = powers(oracle, s, bound, upto, DRAWS, rng)
            reached = np.flatnonzero(power >= POWER)
            if len(reached):
                best = (int(ticks[reached[0]]) + 1, bound)
                break
            if upto >= end:
                break
    return best
