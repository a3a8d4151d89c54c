"""Synthetic canary/baseline metric streams, generated from a scenario's parameters.

One stream is one canary step observed every 10 s: per arm, requests, errors and "slow"
requests (slower than the latency SLO bound), a per-tick p99 latency, and a latency
histogram with the Prometheus client's default buckets. Every strategy is replayed over
the very same streams.

Realism that trips naive gates on good releases: common-mode shocks (both arms, e.g. a
shared dependency hiccups), per-tick over-dispersion of error and latency rates, a short
warm-up blip on the canary, diurnal traffic, and missing scrapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from shiprail.plan.durations import parse_duration

TICK = 10.0  # seconds per sample
# The Prometheus client libraries' default histogram buckets, in milliseconds.
BUCKETS_MS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str = "good"  # good | error | latency: what a strategy should conclude
    rpm: float = 1000.0  # requests per minute over both arms
    canary_share: float = 0.1
    diurnal: bool = False  # traffic swings ±50 % over the run
    base_error_rate: float = 0.002
    error_factor: float = 1.0  # canary error rate ÷ baseline's once the regression starts
    latency_median_ms: float = 60.0
    latency_sigma: float = 0.5  # lognormal shape
    latency_factor: float = 1.0  # canary latency ÷ baseline's once the regression starts
    dispersion: float = 0.3  # coefficient of variation of the per-tick rates (both arms)
    shock_probability: float = 0.01  # per tick, a 30 s common-mode shock on both arms
    shock_factor: float = 5.0
    warmup: float = 30.0  # seconds of canary warm-up blip (good releases have one too)
    warmup_factor: float = 3.0
    missing: float = 0.0  # probability that an evaluation finds no data (scrape gap)
    regression_start: float = 0.0  # seconds after the step began
    ramp: bool = False  # slow degradation: factors reached linearly by the end
    duration: float = 1800.0  # seconds the canary step lasts
    repetitions: int = 2000
    seed: int = 1
    slo_objective: float = 0.99  # availability SLO (burn-rate strategy)
    static_error_max: float = 0.01  # Flagger's built-in: request success rate ≥ 99 %
    static_latency_ms: float = 500.0  # Flagger's built-in: request duration p99 ≤ 500 ms
    bucket_ms: float = 250.0  # the histogram bucket bound a count-based latency gate compares

    @property
    def ticks(self) -> int:
        return int(self.duration / TICK)


@dataclass
class Stream:
    requests: np.ndarray  # shape (2, ticks): [canary, baseline]
    errors: np.ndarray
    slow: np.ndarray  # slower than static_latency_ms (the SLO bound)
    fast: np.ndarray  # within bucket_ms: the `_bucket{le=...}` counter
    p99_ms: np.ndarray
    missing: np.ndarray  # shape (ticks,), bool
    regression_tick: int
    # shape (len(BUCKETS_MS), 2, ticks): requests within each bound, as `_bucket{le}` counts them
    within: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


def load_corpus(path: Path) -> list[Scenario]:
    """A YAML file: `defaults:` (any Scenario field) and `scenarios:` (a list of overrides)."""
    document = yaml.safe_load(path.read_text()) or {}
    defaults = document.get("defaults", {}) or {}
    known = {f.name for f in fields(Scenario)}
    scenarios = []
    for index, raw in enumerate(document.get("scenarios", []) or []):
        merged = {**defaults, **raw}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"{path}: scenarios[{index}]: unknown field(s) {', '.join(unknown)}")
        for key in ("duration", "regression_start", "warmup"):
            if isinstance(merged.get(key), str):
                merged[key] = parse_duration(merged[key]).total_seconds()
        scenarios.append(Scenario(**merged))
    return scenarios


def _factor(s: Scenario, target: float, t: np.ndarray) -> np.ndarray:
    if target == 1.0:
        return np.ones_like(t)
    after = t >= s.regression_start
    if not s.ramp:
        return np.where(after, target, 1.0)
    span = max(s.duration - s.regression_start, TICK)
    progress = np.clip((t - s.regression_start) / span, 0.0, 1.0)
    return 1.0 + (target - 1.0) * progress


def generate(
    s: Scenario, rng: np.random.Generator, histogram_rng: np.random.Generator | None = None
) -> Stream:
    """One stream. The histogram is drawn from `histogram_rng` (default: `rng`), so adding
    it left every other column of a seeded corpus as it was."""
    n = s.ticks
    t = np.arange(n) * TICK
    swing = 0.5 * np.sin(2 * math.pi * t / s.duration) if s.diurnal else np.zeros(n)
    traffic = s.rpm * TICK / 60.0 * (1.0 + swing)
    shares = np.array([[s.canary_share], [1.0 - s.canary_share]])
    requests = rng.poisson(shares * traffic)

    def noisy(cv: float, shape: tuple[int, ...]) -> np.ndarray:
        if cv <= 0:
            return np.ones(shape)
        k = 1.0 / cv**2
        return rng.gamma(k, 1.0 / k, size=shape)

    shock = np.ones(n)
    for start in np.flatnonzero(rng.random(n) < s.shock_probability):
        shock[start : start + 3] = s.shock_factor
    common = noisy(s.dispersion, (n,)) * shock
    per_arm = noisy(s.dispersion / 2, (2, n))
    warm = np.where(t < s.warmup, s.warmup_factor, 1.0)
    error_factor = np.vstack([_factor(s, s.error_factor, t) * warm, np.ones(n)])
    error_rate = np.clip(s.base_error_rate * common * per_arm * error_factor, 0.0, 1.0)
    errors = rng.binomial(requests, error_rate)

    latency_factor = np.vstack([_factor(s, s.latency_factor, t), np.ones(n)])
    median = (
        s.latency_median_ms * latency_factor * noisy(s.dispersion / 3, (n,)) * np.where(shock > 1, 2.0, 1.0)
    )

    def beyond(bound_ms: float) -> np.ndarray:
        fraction = 1.0 - _phi((math.log(bound_ms) - np.log(median)) / s.latency_sigma)
        return rng.binomial(requests, np.clip(fraction, 0.0, 1.0))

    slow = beyond(s.static_latency_ms)
    fast = requests - beyond(s.bucket_ms)
    # A tick's p99 as a histogram would report it: the true p99, blurred by how few requests it saw.
    blur = rng.normal(0.0, 1.0, size=(2, n)) * s.latency_sigma / np.sqrt(np.maximum(requests, 1)) * 3
    p99 = np.where(requests > 0, median * np.exp(2.326 * s.latency_sigma + blur), np.nan)
    missing = rng.random(n) < s.missing
    return Stream(
        requests=requests,
        errors=errors,
        slow=slow,
        fast=fast,
        p99_ms=p99,
        missing=missing,
        regression_tick=int(s.regression_start / TICK),
        within=_histogram(s, requests, median, histogram_rng or rng),
    )


def _histogram(s: Scenario, requests: np.ndarray, median: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cumulative bucket counts per arm and tick. Each arm's median also wobbles on its own
    (cv = dispersion/6): two sets of pods are never exactly alike, and a test on thousands
    of bucket counts would notice if they were."""
    k = 1.0 / max(s.dispersion / 6, 1e-6) ** 2
    arm_median = median * rng.gamma(k, 1.0 / k, size=median.shape)
    bounds = np.log(np.array(BUCKETS_MS, dtype=float))[:, None, None]
    cdf = _phi((bounds - np.log(arm_median)[None]) / s.latency_sigma)  # (buckets, 2, ticks)
    edges = np.concatenate([np.zeros((1, *cdf.shape[1:])), cdf, np.ones((1, *cdf.shape[1:]))])
    cells = np.clip(np.diff(edges, axis=0), 0.0, 1.0)
    counts = rng.multinomial(requests, np.moveaxis(cells / cells.sum(axis=0), 0, -1))  # (2, ticks, buckets+1)
    within: np.ndarray = np.moveaxis(np.cumsum(counts, axis=-1)[..., :-1], -1, 0)
    return within


def _phi(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    result: np.ndarray = ndtr(x)
    return result
