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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from shiprail.plan.durations import parse_duration
from shiprail.plan.located import Loc, SourceError, SourceIssue, YamlSyntaxError, format_loc, load_located

TICK = 10.0  # seconds per sample
# The Prometheus client libraries' default histogram buckets, in milliseconds.
BUCKETS_MS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)


def _seconds(value: Any) -> float:
    """`30s`, `10m`, `1h30m` as in plans; a bare number is seconds."""
    return parse_duration(value).total_seconds()


_Positive = Annotated[float, Field(gt=0)]
_NonNegative = Annotated[float, Field(ge=0)]
_Probability = Annotated[float, Field(ge=0, le=1)]
_Seconds = Annotated[float, BeforeValidator(_seconds)]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Scenario:
    name: Annotated[str, Field(min_length=1)]
    kind: Literal["good", "error", "latency"] = "good"  # what a strategy should conclude
    rpm: _Positive = 1000.0  # requests per minute over both arms
    canary_share: Annotated[float, Field(gt=0, lt=1)] = 0.1
    diurnal: bool = False  # traffic swings ±50 % over the run
    base_error_rate: _Probability = 0.002
    error_factor: _Positive = 1.0  # canary error rate ÷ baseline's once the regression starts
    latency_median_ms: _Positive = 60.0
    latency_sigma: _Positive = 0.5  # lognormal shape
    latency_factor: _Positive = 1.0  # canary latency ÷ baseline's once the regression starts
    dispersion: _NonNegative = 0.3  # coefficient of variation of the per-tick rates (both arms)
    shock_probability: _Probability = 0.01  # per tick, a 30 s common-mode shock on both arms
    shock_factor: _Positive = 5.0
    warmup: _Seconds = 30.0  # seconds of canary warm-up blip (good releases have one too)
    warmup_factor: _Positive = 3.0
    missing: _Probability = 0.0  # probability that an evaluation finds no data (scrape gap)
    regression_start: _Seconds = 0.0  # seconds after the step began
    ramp: bool = False  # slow degradation: factors reached linearly by the end
    duration: Annotated[_Seconds, Field(ge=TICK)] = 1800.0  # seconds the canary step lasts
    repetitions: Annotated[int, Field(ge=1)] = 2000
    seed: Annotated[int, Field(ge=0)] = 1
    slo_objective: Annotated[float, Field(gt=0, lt=1)] = 0.99  # availability SLO (burn-rate strategy)
    static_error_max: _Probability = 0.01  # Flagger's built-in: request success rate ≥ 99 %
    static_latency_ms: _Positive = 500.0  # Flagger's built-in: request duration p99 ≤ 500 ms
    bucket_ms: _Positive = 250.0  # the histogram bucket bound a count-based latency gate compares

    @model_validator(mode="after")
    def _regression_within_the_step(self) -> Scenario:
        if self.regression_start >= self.duration:
            raise ValueError(
                f"regression_start ({self.regression_start:g} s) must be before the end of the step"
                f" (duration {self.duration:g} s)"
            )
        return self

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
    regression_tick: int  # the first tick whose data shows the regression (`first_regressed_tick`)
    # shape (len(BUCKETS_MS), 2, ticks): requests within each bound, as `_bucket{le}` counts them
    within: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


class CorpusError(SourceError):
    """A corpus that cannot be used; `issues` lists every problem found, each with its line."""


def _where(field: str, index: int, entry: dict[str, Any], defaults: dict[str, Any]) -> Loc:
    """Where a scenario's problem with `field` is set: in the entry, or in the defaults it inherits."""
    if field and field not in entry and field in defaults:
        return ("defaults", field)
    return ("scenarios", index, field) if field else ("scenarios", index)


def load_corpus(path: Path) -> list[Scenario]:
    """A YAML file: `defaults:` (any Scenario field) and `scenarios:` (a list of overrides).

    Every problem is reported at once, at the line of the field that causes it: in the
    scenario that sets it, or in `defaults` when the scenario inherits it.
    """
    source = str(path)
    try:
        raw, lines = load_located(path.read_text(encoding="utf-8"), source)
    except YamlSyntaxError as exc:
        raise CorpusError([exc.issue]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError([SourceIssue(source, 0, "", f"cannot read the file: {exc}")]) from None

    def issue(loc: Loc, message: str) -> SourceIssue:
        return SourceIssue(source, lines.resolve(loc)[1], format_loc(loc), message)

    if not isinstance(raw, dict) or not isinstance(raw.get("scenarios"), list) or not raw["scenarios"]:
        raise CorpusError([issue(("scenarios",), "a corpus needs a non-empty list `scenarios`")])
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise CorpusError([issue(("defaults",), "must be a mapping of scenario fields")])
    issues: list[SourceIssue] = []
    scenarios: dict[int, Scenario] = {}  # by the entry's index in the file
    for index, entry in enumerate(raw["scenarios"]):
        if not isinstance(entry, dict):
            issues.append(issue(("scenarios", index), "a scenario is a mapping of fields"))
            continue
        if keys := [k for k in (*defaults, *entry) if not isinstance(k, str)]:
            issues.append(issue(("scenarios", index), f"field names are words, not {keys[0]!r}"))
            continue
        try:
            scenarios[index] = Scenario(**{**defaults, **entry})
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["type"] == "unexpected_keyword_argument":
                    message = "unknown field"
                issues.append(issue(_where(field, index, entry, defaults), message))
    named: set[str] = set()
    for index, s in scenarios.items():
        if s.name in named:
            issues.append(
                issue(("scenarios", index, "name"), f"{s.name!r} is already the name of another scenario")
            )
        named.add(s.name)
    if issues:
        raise CorpusError(issues)
    return list(scenarios.values())


def first_regressed_tick(s: Scenario) -> int:
    """The first tick whose data shows the regression: tick i covers [10i, 10i + 10) s and is
    generated at its start, so it is regressed once 10i ≥ `regression_start` (`_factor`). A
    decision at tick k has seen ticks 0 … k − 1."""
    return math.ceil(s.regression_start / TICK)


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
        regression_tick=first_regressed_tick(s),
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
