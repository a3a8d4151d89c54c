"""Gate strategies replayed over the same streams: the references users would pick, and shiprail.

Each reference is configured as its documentation recommends (see bench/README.md); shiprail
runs through `shiprail.gates.judge` and `GateTracker`, the code the bake activity calls.
`run` returns the tick at which the strategy rolls back, or None if it would promote.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
from pydantic import TypeAdapter

from bench.streams import BUCKETS_MS, TICK, Scenario, Stream
from shiprail.gates import (
    WARM_UP,
    GateContext,
    GateTracker,
    GateVerdict,
    QueryResult,
    after_warm_up,
    first_memory,
    gate_queries,
    judge,
    learned_noise,
    warm_up_gate,
)
from shiprail.gates.stats import hodges_lehmann
from shiprail.plan.models import Gate

_MINUTE = int(60 / TICK)
_START = datetime(2026, 1, 1, tzinfo=UTC)  # a bake's step start: the streams have no clock


class Strategy(Protocol):
    name: str

    def run(self, s: Scenario, st: Stream) -> int | None: ...


def _ratio(num: np.ndarray, den: np.ndarray, start: int, end: int) -> float:
    total = float(den[max(start, 0) : end].sum())
    return float(num[max(start, 0) : end].sum()) / total if total > 0 else float("nan")


def _p99(st: Stream, start: int, end: int) -> float:
    values, weights = st.p99_ms[0, max(start, 0) : end], st.requests[0, max(start, 0) : end]
    keep = weights > 0
    return float(np.average(values[keep], weights=weights[keep])) if keep.any() else float("nan")


class FlaggerStyle:
    """Built-in checks every 1 m over a 1 m window; an analysis run with any failing metric
    adds one to the failed-checks counter, rollback at threshold 5; NaN or no data fails
    the check (Flagger halts on "no values found" and counts it)."""

    name = "flagger"

    def run(self, s: Scenario, st: Stream) -> int | None:
        failed = 0
        for k in range(_MINUTE, s.ticks + 1, _MINUTE):
            errors = _ratio(st.errors[0], st.requests[0], k - _MINUTE, k)
            p99 = _p99(st, k - _MINUTE, k)
            # NaN makes a comparison false: a failed check, as is an empty result.
            if st.missing[k - 1] or not (errors <= s.static_error_max and p99 <= s.static_latency_ms):
                failed += 1
            if failed >= 5:
                return k
        return None


class ArgoStyle:
    """AnalysisTemplate every 1 m over a 5 m window, successCondition on each metric,
    failureLimit 3, inconclusiveLimit 0, consecutiveErrorLimit 4 (empty result = error)."""

    name = "argo"

    def run(self, s: Scenario, st: Stream) -> int | None:
        failures = [0, 0]
        errors_in_a_row = [0, 0]
        window = 5 * _MINUTE
        for k in range(_MINUTE, s.ticks + 1, _MINUTE):
            values = (_ratio(st.errors[0], st.requests[0], k - window, k), _p99(st, k - window, k))
            bounds = (s.static_error_max, s.static_latency_ms)
            for m in range(2):
                if st.missing[k - 1]:
                    errors_in_a_row[m] += 1
                    if errors_in_a_row[m] > 4:
                        return k
                    continue
                errors_in_a_row[m] = 0
                if not values[m] <= bounds[m]:  # NaN makes the condition false: a failure
                    failures[m] += 1
                    if failures[m] > 3:
                        return k
        return None


class KayentaStyle:
    """Mann–Whitney with a Hodges–Lehmann interval at 98 %, tolerance 0.25·|Δ|, allowed
    increase 1.0, per-minute canary and baseline series, re-judged every 10 m on the
    growing window; a High critical metric (or ≥ 50 % no data) ends the canary."""

    name = "kayenta"
    allowed_increase = 1.0

    def _high(self, x: np.ndarray, y: np.ndarray) -> bool | None:
        keep = ~(np.isnan(x) | np.isnan(y))
        if keep.sum() < max(3, len(x) / 2):
            return None  # no data
        x, y = x[keep], y[keep]
        if np.all(x == x[0]) and np.all(y == x[0]):
            return False
        shift, low, _high = hodges_lehmann(list(x), list(y), 0.98)
        mean_y = float(np.mean(y))
        effect = float(np.mean(x)) / mean_y if mean_y else (float("inf") if np.mean(x) > 0 else 1.0)
        return low > 0.25 * abs(shift) and effect >= self.allowed_increase

    def run(self, s: Scenario, st: Stream) -> int | None:
        for k in range(10 * _MINUTE, s.ticks + 1, 10 * _MINUTE):
            minutes = k // _MINUTE
            err = np.full((2, minutes), np.nan)
            lat = np.full((2, minutes), np.nan)
            for i in range(minutes):
                a, b = i * _MINUTE, (i + 1) * _MINUTE
                if st.missing[b - 1]:
                    continue
                for arm in range(2):
                    err[arm, i] = _ratio(st.errors[arm], st.requests[arm], a, b)
                    values, weights = st.p99_ms[arm, a:b], st.requests[arm, a:b]
                    if weights.sum() > 0:
                        lat[arm, i] = float(np.average(values[weights > 0], weights=weights[weights > 0]))
            for x, y in ((err[0], err[1]), (lat[0], lat[1])):
                if self._high(x, y) in (True, None):
                    return k
        return None


class BurnRateStyle:
    """Sloth's default multiwindow multi-burn-rate rules on the canary's own traffic:
    page 14.4× (1 h / 5 m) and 6× (6 h / 30 m), ticket 3× (1 d / 2 h) and 1× (3 d / 6 h),
    evaluated every 1 m, for the availability SLO and a latency SLO (requests slower than
    the bound); any firing rule rolls back."""

    name = "burn-rate"
    rules = ((3600, 300, 14.4), (21600, 1800, 6.0), (86400, 7200, 3.0), (259200, 21600, 1.0))

    def run(self, s: Scenario, st: Stream) -> int | None:
        budget = 1.0 - s.slo_objective
        for k in range(_MINUTE, s.ticks + 1, _MINUTE):
            for bad in (st.errors[0], st.slow[0]):
                for long, short, factor in self.rules:
                    r_long = _ratio(bad, st.requests[0], k - int(long / TICK), k)
                    r_short = _ratio(bad, st.requests[0], k - int(short / TICK), k)
                    if r_long > factor * budget and r_short > factor * budget:
                        return k
        return None


# shiprail's recommended configuration for a canary step (README, "Which one?"): sequential
# comparisons against the baseline of error counts (20 % more errors tolerated) and of the
# whole latency histogram (10 % slower tolerated, in latency), looked at every 10 s: an
# anytime-valid test pays nothing for looking, and the intervals between looks are what it
# measures the arms' over-dispersion from. Both ignore the first minute of warm-up; other
# fields are the plan defaults.
SHIPRAIL_GATES: dict[str, dict[str, object]] = {
    "errors": {
        "type": "compare",
        "bad": "errors",
        "total": "requests",
        "max_increase": 0.2,
        "initial_delay": "1m",
        "interval": "10s",
        "on_no_data": "wait",
    },
    "latency": {
        "type": "compare",
        "histogram": 'http_request_duration_seconds_bucket{version="{{version}}"}',
        "max_increase": 0.1,
        "initial_delay": "1m",
        "interval": "10s",
        "on_no_data": "wait",
    },
}


def _minute_p99(st: Stream, arm: int) -> list[tuple[int, float]]:
    """(end tick, p99) of each whole minute with data: what a range query's series holds."""
    key = f"minute_p99_{arm}"
    if key not in st.extras:
        series = []
        for a in range(0, st.requests.shape[1] - _MINUTE + 1, _MINUTE):
            b = a + _MINUTE
            weights = st.requests[arm, a:b]
            if st.missing[b - 1] or weights.sum() == 0:
                continue  # a gap in the range query's result
            value = float(np.average(st.p99_ms[arm, a:b][weights > 0], weights=weights[weights > 0]))
            series.append((b, value))
        st.extras[key] = series
    series: list[tuple[int, float]] = st.extras[key]
    return series


def _cumulative(st: Stream, name: str, column: np.ndarray) -> np.ndarray:
    if name not in st.extras:
        zeros = np.zeros((*column.shape[:-1], 1))
        st.extras[name] = np.concatenate([zeros, np.cumsum(column, axis=-1)], axis=-1)
    cumulative: np.ndarray = st.extras[name]
    return cumulative


def _histogram(st: Stream, arm: int, since: int, k: int) -> QueryResult:
    """`sum by (le) (increase(_bucket[...]))` at tick k: requests within each bound, and +Inf."""
    within = _cumulative(st, "within", st.within)[:, arm]
    requests = _cumulative(st, "total", st.requests)[arm]  # the key `_results` gives it too
    by_label = {
        f"{bound / 1000:g}": float(within[j, k] - within[j, since]) for j, bound in enumerate(BUCKETS_MS)
    }
    by_label["+Inf"] = float(requests[k] - requests[since])
    return QueryResult(by_label=by_label)


class Shiprail:
    """The gates of a plan, judged by `shiprail.gates.judge` and counted by `GateTracker`
    at each gate's own interval, on what Prometheus would answer at that moment."""

    def __init__(self, gates: dict[str, dict[str, object]] | None = None, name: str = "shiprail") -> None:
        adapter: TypeAdapter[Gate] = TypeAdapter(Gate)
        self.name = name
        self.raw = gates or SHIPRAIL_GATES
        self.gates = {k: adapter.validate_python(v) for k, v in self.raw.items()}

    def _results(self, gate: Gate, queries: list[str], st: Stream, k: int) -> dict[str, QueryResult]:
        """What Prometheus would answer at tick k: each counter's increase since the warm-up,
        or the per-minute p99 series."""
        delay = int(gate.initial_delay.total_seconds() / TICK)
        if gate.type == "compare" and gate.query is not None:
            return {
                q: QueryResult(
                    series=[v for end, v in _minute_p99(st, 0 if q == "canary" else 1) if delay < end <= k]
                )
                for q in queries
            }
        if st.missing[k - 1]:
            return {q: QueryResult() for q in queries}
        if gate.type == "compare" and gate.histogram is not None:
            return {q: _histogram(st, 0 if q == "canary" else 1, delay, k) for q in queries}
        counters = {"bad": st.errors, "good": st.fast, "total": st.requests}
        results = {}
        for q in queries:
            arm, _, counter = q.partition("_")
            cumulative = _cumulative(st, counter, counters[counter])[0 if arm == "canary" else 1]
            results[q] = QueryResult(value=float(cumulative[k] - cumulative[delay]))
        return results

    def run(self, s: Scenario, st: Stream, learned: dict[str, dict[str, Any]] | None = None) -> int | None:
        """The tick the gates roll back at, if any; `learned` is what they learned of the
        noise in a step before (`learn`), as the bake activity hands it on."""
        memories = {name: first_memory(g, (learned or {}).get(name)) for name, g in self.gates.items()}
        return self._bake(s, st, memories)

    def learn(self, s: Scenario, st: Stream) -> tuple[int | None, dict[str, dict[str, Any]]]:
        """A step of its own: the tick it rolled back at, if any, and what the gates learned."""
        memories = {name: first_memory(g, None) for name, g in self.gates.items()}
        tick = self._bake(s, st, memories)
        return tick, {
            name: learned_noise(g, after_warm_up(g, memories[name])) for name, g in self.gates.items()
        }

    def _bake(self, s: Scenario, st: Stream, memories: dict[str, dict[str, Any]]) -> int | None:
        trackers = {name: GateTracker(name=name) for name in self.gates}
        every = {name: max(1, int(g.interval.total_seconds() / TICK)) for name, g in self.gates.items()}
        first = {
            name: int(g.initial_delay.total_seconds() / TICK) + every[name] for name, g in self.gates.items()
        }
        for k in range(1, s.ticks + 1):
            for name, gate in self.gates.items():
                if WARM_UP in memories[name]:
                    # The looks inside the warm-up, up to its end, as the bake activity's
                    # `look`: they learn the noise and judge nothing.
                    warm = warm_up_gate(gate)
                    if k < first[name] - every[name] + 1:
                        if warm is not None and k % every[name] == 0:
                            self._judge(name, warm, s, st, k, memories[name][WARM_UP])
                        continue
                    memories[name] = after_warm_up(gate, memories[name])
                if k < first[name] or (k - first[name]) % every[name]:
                    continue
                trackers[name].record(self._judge(name, gate, s, st, k, memories[name]), gate)
                if trackers[name].failed:
                    return k
        return None

    def _judge(
        self, name: str, gate: Gate, s: Scenario, st: Stream, k: int, memory: dict[str, Any]
    ) -> GateVerdict:
        ctx = GateContext(
            service="svc",
            version="canary",
            stable_version="stable",
            weight=s.canary_share * 100,
            step_start=_START,
            now=_START + timedelta(seconds=k * TICK),
            bake=timedelta(seconds=s.duration),
            interval=gate.interval,
        )
        results = self._results(gate, list(gate_queries(gate, ctx)), st, k)
        return judge(name, gate, ctx, results, memory)


STRATEGIES: list[Strategy] = [FlaggerStyle(), ArgoStyle(), KayentaStyle(), BurnRateStyle(), Shiprail()]
