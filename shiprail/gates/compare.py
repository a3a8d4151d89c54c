"""`compare`: the canary against its baseline (stable serving the same traffic, same time).

Counts (`bad` or `good`, and `total`): an anytime-valid sequential test (Lindon & Malek 2022)
on bad requests, errors or requests slower than a histogram bucket. Under H0 the canary's
share of the bad requests of both arms is at most its share of traffic (moved by
`max_increase`). The test (`gates.sequential`) divides the counts by the over-dispersion it
measures between looks, restarts at every look for regressions that begin late, and keeps
the running maximum of its e-value, so it stays valid however often it looks and however
busy the service is.

Histogram (`histogram`): at every bucket bound b of a latency histogram, with the
tolerance in latency: the canary's share slower than (1 + δ)·b, read between its bucket
bounds, against the baseline's share slower than b. A regression shows wherever in the
distribution it is largest, with no bound picked in advance, and a shift smaller than δ
passes at any traffic. Three tests run on the same restarts, and each origin's weight is
split between them: a two-sample count test (`gates.two_sample`: the slow and the fast
requests of both arms, what a quiet service has), a t-test on each interval's probit
difference of shares (`gates.intervals`: what a busy service has, where the pods' wobble
and not the requests is the noise), and, for a fifth, the errors' Poisson test on the
canary's share of the slow requests (`gates.sequential`). That one wastes the fast
requests, but it judges the pods' wobble on the share of slow requests the canary has: when
a quiet canary is slower than every request the baseline serves, the slow requests are
all the canary's, interval after interval, which no wobble explains, where the count test
weighs its wobble at the pooled share the regression itself has moved to the middle. Each
test averages its bounds' e-values, so the whole is an e-process.

Samples (`query`): a one-sided Mann–Whitney test on the two series over the step, with a
Hodges–Lehmann shift that must clear a tolerance band, and alpha spent across the looks of
the bake so repeated judgements do not inflate false rollbacks either.

At 100 % there is no baseline traffic: the gate does not apply and says so.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from shiprail.gates.base import (
    GateContext,
    GateVerdict,
    QueryResult,
    QuerySpec,
    Verdict,
    fmt_ratio,
    no_data,
    prom_range,
    too_few,
)
from shiprail.gates.intervals import learned_noise as learn_intervals
from shiprail.gates.intervals import weigh_intervals
from shiprail.gates.sequential import Key, Reading, mixture, running_p, weigh
from shiprail.gates.sequential import learned_noise as learn_pairs
from shiprail.gates.stats import hodges_lehmann, interpolate_survival, mann_whitney_greater, spent_alpha
from shiprail.gates.two_sample import learned_noise as learn_shares
from shiprail.gates.two_sample import weigh_shares
from shiprail.plan.models import CompareGate
from shiprail.plan.templates import render, substitute

_INF = "+Inf"


def _versions(gate: CompareGate, ctx: GateContext) -> tuple[dict[str, str], dict[str, str]]:
    canary = ctx.template_values()
    baseline = dict(canary, version=substitute(gate.baseline_version, canary))
    return canary, baseline


def queries(gate: CompareGate, ctx: GateContext) -> dict[str, QuerySpec]:
    if ctx.weight >= 100:
        return {}
    canary, baseline = _versions(gate, ctx)
    # Evidence starts after `initial_delay`: a canary's warm-up (cold caches, JIT) is not
    # the release's steady state, and the sequential test would remember it for good.
    judged = max(ctx.elapsed - gate.initial_delay, timedelta(0))
    window = prom_range(judged)
    if gate.histogram is not None:
        return {
            arm: QuerySpec(f"sum by (le) (increase({render(gate.histogram, values)}[{window}]))", by="le")
            for arm, values in (("canary", canary), ("baseline", baseline))
        }
    if gate.total is not None:
        kind, counter = ("bad", gate.bad) if gate.bad is not None else ("good", gate.good)
        assert counter is not None
        specs = {}
        for arm, values in (("canary", canary), ("baseline", baseline)):
            counted, total = render(counter, values), render(gate.total, values)
            specs[f"{arm}_{kind}"] = QuerySpec(f"sum(increase({counted}[{window}])) or vector(0)")
            specs[f"{arm}_total"] = QuerySpec(f"sum(increase({total}[{window}]))")
        return specs
    assert gate.query is not None
    step = max(ctx.interval / 4, timedelta(seconds=1))
    return {
        arm: QuerySpec(
            render(gate.query, values), range_start=ctx.step_start + gate.initial_delay, range_step=step
        )
        for arm, values in (("canary", canary), ("baseline", baseline))
    }


def judge(
    gate: CompareGate,
    name: str,
    ctx: GateContext,
    results: dict[str, QueryResult],
    memory: dict[str, Any],
) -> GateVerdict:
    if ctx.weight >= 100:
        return GateVerdict(
            gate=name,
            status=Verdict.PASS,
            threshold="n/a at 100%",
            reason="not applicable at 100%: no baseline traffic to compare with",
        )
    for result in results.values():
        if result.error:
            return no_data(name, f"query failed: {result.error}")
    if gate.histogram is not None:
        return _judge_histogram(gate, name, ctx, results, memory)
    if gate.total is not None:
        return _judge_counts(gate, name, ctx, results, memory)
    return _judge_samples(gate, name, ctx, results, memory)


# The histogram's tests, by the key of their memory, each with what reads what it learned
# of the noise (`learned_noise` in its module).
_CARRIERS = {"intervals": learn_intervals, "shares": learn_shares, "slow": learn_pairs}


def learned_noise(gate: CompareGate, memory: dict[str, Any]) -> dict[str, Any]:
    """What this step's gate learned of the service's noise, for its next step: each count
    test's pairs (`sequential.learned_noise`, `two_sample.learned_noise`) and the histogram's
    per-interval residuals (`intervals.learned_noise`). Plain numbers by key or bucket bound,
    no labels or values of a query. A `query` gate learns nothing."""
    if gate.histogram is not None:
        learned = {key: learn(memory.get(key) or {}) for key, learn in _CARRIERS.items()}
    elif gate.total is not None:
        learned = {"counts": learn_pairs(memory)}
    else:
        return {}
    return {key: x for key, x in learned.items() if x}


def starting_memory(gate: CompareGate, learned: dict[str, Any]) -> dict[str, Any]:
    """A step's first memory, holding what the step before learned (`learned_noise`)."""
    if gate.histogram is not None:
        return {key: {"carried": learned[key]} for key in _CARRIERS if learned.get(key)}
    if gate.total is not None and learned.get("counts"):
        return {"carried": learned["counts"]}
    return {}


def warm_up_gate(gate: CompareGate) -> CompareGate | None:
    """The gate a look inside `initial_delay` is taken with, if it learns from one: the same
    test over the window from the step's start, whose verdict is never used. The warm-up is
    skipped because its level may not be the release's, but pods that wobble in it wobble
    after it: the noise its intervals show joins what the step was carried in, so a first
    step does not start knowing nothing. A warm-up whose canary drifts shows more noise
    than there is, which only asks for more evidence. A `query` gate learns nothing."""
    if gate.query is not None or gate.initial_delay <= timedelta(0):
        return None
    return gate.model_copy(update={"initial_delay": timedelta(0)})


def _planned_looks(gate: CompareGate, ctx: GateContext) -> int:
    """How many looks the bake will take: the restarts' weights are spread over them."""
    every = (gate.interval or ctx.interval).total_seconds()
    judged = (ctx.bake - gate.initial_delay).total_seconds()
    return max(1, math.ceil(judged / every)) if every > 0 else 1


def _interval_length(gate: CompareGate, ctx: GateContext, memory: dict[str, Any]) -> float:
    """How many looks long the interval since the last weighed one is (from the start of
    the gate's window at its first): a look that found no data, or a missed scrape, makes
    the next interval longer, and its counts hold less of the pods' wobble. Kept in
    `memory["at"]`."""
    every = (gate.interval or ctx.interval).total_seconds()
    at = ctx.elapsed.total_seconds()
    since = float(memory.get("at", gate.initial_delay.total_seconds()))
    memory["at"] = at
    return (at - since) / every if every > 0 else 1.0


def _judge_counts(
    gate: CompareGate, name: str, ctx: GateContext, results: dict[str, QueryResult], memory: dict[str, Any]
) -> GateVerdict:
    alpha = 1 - gate.confidence
    # `good` gates count what misses a bucket bound: slow requests, not errors.
    rate = "error rate" if gate.bad is not None else "bad-request rate"
    bound = f"canary ≤ {1 + gate.max_increase:g}× baseline {rate} (α={alpha:g})"
    values = {k: r.value for k, r in results.items()}
    if any(v is None for v in values.values()) or not values["canary_total"] or not values["baseline_total"]:
        return no_data(name, "no traffic on the canary or the baseline", bound)
    c_total, b_total = float(values["canary_total"] or 0), float(values["baseline_total"] or 0)
    c_bad, b_bad = _bad(values, "canary", c_total), _bad(values, "baseline", b_total)
    if c_total < gate.min_samples:
        return no_data(name, too_few(c_total, "canary requests", gate.min_samples), bound, requests=c_total)
    reading = Reading([c_bad, c_total], [b_bad, b_total], {"bad": Key(((0, 1.0),), 0)})
    length = _interval_length(gate, ctx, memory)
    weighing = weigh(
        memory,
        reading,
        max_increase=gate.max_increase,
        prior_strength=gate.prior_strength,
        planned_looks=_planned_looks(gate, ctx),
        length=length,
    )
    memory["at"] = ctx.elapsed.total_seconds()
    p = running_p(memory, mixture(weighing.tests, _planned_looks(gate, ctx)))
    # Each counter's `increase` is extrapolated on its own, so bad can round past total.
    c_rate, b_rate = min(c_bad / c_total, 1.0), min(b_bad / b_total, 1.0)
    ratio = c_rate / b_rate if b_rate > 0 else (float("inf") if c_rate > 0 else 1.0)
    evidence = {
        "canary_errors": c_bad,
        "canary_requests": c_total,
        "baseline_errors": b_bad,
        "baseline_requests": b_total,
        "p_value": p,
        "dispersion": weighing.dispersion["bad"],
    }
    ratio_text = f"{ratio:.1f}× baseline" if b_rate > 0 else f"{fmt_ratio(c_rate)} vs baseline 0%"
    p_text, requests = _p_text(p), _requests(c_total, b_total)
    if weighing.strongest is not None and p <= alpha:
        reason = f"canary {rate} {ratio_text}, {p_text} after {requests}"
        return GateVerdict(
            gate=name,
            status=Verdict.FAIL,
            value=ratio if b_rate > 0 else None,
            threshold=bound,
            reason=reason,
            evidence=evidence,
        )
    reason = f"canary {rate} {fmt_ratio(c_rate)} vs baseline {fmt_ratio(b_rate)}, {p_text} after {requests}"
    return GateVerdict(
        gate=name,
        status=Verdict.PASS,
        value=ratio if b_rate > 0 else None,
        threshold=bound,
        reason=reason,
        evidence=evidence,
        pending=True,
    )


def _histogram_keys(
    bounds: list[str], canary: dict[str, float], c_total: float, max_increase: float
) -> tuple[dict[str, Key], dict[str, float]]:
    """One key per bound b: the canary's requests slower than (1 + δ)·b, read between the
    bounds around it, against the baseline's slower than b. The interpolation weights come
    from the canary's whole window and are applied to raw counts, so the window, each
    interval and each restart are read the same way. Bounds whose (1 + δ)·b lies beyond the
    last finite bound cannot be read and are not tested."""
    les = [float(le) for le in bounds]
    survival = [max(c_total - canary[le], 0.0) / c_total for le in bounds]
    keys: dict[str, Key] = {}
    slower_at: dict[str, float] = {}
    for j, le in enumerate(bounds):
        x = les[j] * (1 + max_increase)
        above = next((i for i in range(j, len(les)) if les[i] >= x), None)
        if above is None:
            continue
        if above == j or x <= les[above - 1]:
            keys[le] = Key(((above, 1.0),), j)
            slower_at[le] = survival[above]
            continue
        low = above - 1
        s_x = interpolate_survival(les[low], les[above], survival[low], survival[above], x)
        spread = survival[low] - survival[above]
        w = (s_x - survival[above]) / spread if spread > 0 else 0.0
        keys[le] = Key(((low, w), (above, 1.0 - w)), j)
        slower_at[le] = s_x
    return keys, slower_at


def _judge_histogram(
    gate: CompareGate, name: str, ctx: GateContext, results: dict[str, QueryResult], memory: dict[str, Any]
) -> GateVerdict:
    alpha = 1 - gate.confidence
    canary, baseline = results["canary"].by_label, results["baseline"].by_label
    bounds = sorted((le for le in canary.keys() & baseline.keys() if le != _INF), key=float)
    slower = f"{1 + gate.max_increase:g}× slower" if gate.max_increase else "slower"
    bound = f"canary's share {slower} than any bucket bound ≤ baseline's share slower than it (α={alpha:g})"
    c_total, b_total = canary.get(_INF, 0.0), baseline.get(_INF, 0.0)
    if not bounds or not c_total or not b_total:
        return no_data(name, "no histogram traffic on the canary or the baseline", bound)
    if c_total < gate.min_samples:
        return no_data(name, too_few(c_total, "canary requests", gate.min_samples), bound, requests=c_total)
    keys, slower_at = _histogram_keys(bounds, canary, c_total, gate.max_increase)
    # Raw numbers: requests slower than each bound, then the arm's traffic.
    reading = Reading(
        [max(c_total - canary[le], 0.0) for le in bounds] + [c_total],
        [max(b_total - baseline[le], 0.0) for le in bounds] + [b_total],
        keys,
    )
    planned = _planned_looks(gate, ctx)
    length = _interval_length(gate, ctx, memory)
    counts = weigh_shares(memory.setdefault("shares", {}), reading, planned_looks=planned, length=length)
    intervals = weigh_intervals(
        memory.setdefault("intervals", {}),
        reading,
        at=ctx.elapsed.total_seconds(),
        interval=(gate.interval or ctx.interval).total_seconds(),
        planned_looks=planned,
    )
    slow = weigh(
        memory.setdefault("slow", {}),
        reading,
        max_increase=0.0,
        prior_strength=gate.prior_strength,
        planned_looks=planned,
        length=length,
    )
    p = running_p(memory, _together(counts.tests, intervals.tests, slow.tests, planned))
    requests = _requests(c_total, b_total)
    # The bound named is the one the test with the most evidence now points at.
    pointers = [(mixture(w.tests, planned), w.strongest) for w in (counts, intervals, slow)]
    le = max(pointers, key=lambda pointer: pointer[0])[1]
    if le is None:
        return GateVerdict(
            gate=name,
            status=Verdict.PASS,
            value=1.0,
            threshold=bound,
            reason=f"canary no slower than baseline at any of {len(keys)} bucket bounds after {requests}",
            evidence={
                "canary_requests": c_total,
                "baseline_requests": b_total,
                "bounds": len(keys),
                "p_value": p,
            },
            pending=True,
        )
    c_share, b_share = slower_at[le], max(b_total - baseline[le], 0.0) / b_total
    ratio = c_share / b_share if b_share > 0 else float("inf")
    evidence = {
        "le": le,
        "canary_share": c_share,
        "baseline_share": b_share,
        "canary_requests": c_total,
        "baseline_requests": b_total,
        "bounds": len(keys),
        "p_value": p,
        "dispersion": counts.dispersion[le],
    }
    x = float(le) * (1 + gate.max_increase)
    shares = (
        f"{fmt_ratio(c_share)} of canary requests slower than {_ms(x)}"
        f" vs baseline {fmt_ratio(b_share)} slower than {_ms(float(le))}"
    )
    failed = p <= alpha
    return GateVerdict(
        gate=name,
        status=Verdict.FAIL if failed else Verdict.PASS,
        value=ratio if b_share > 0 else None,
        threshold=bound,
        reason=f"{shares}, {_p_text(p)} over {len(keys)} bounds after {requests}",
        evidence=evidence,
        pending=not failed,
    )


# How each origin's weight is split between the histogram's tests, fixed in advance: the
# Poisson test on the canary's share of slow requests takes a fifth, the count and the
# per-interval tests the rest (the count test all of it where the per-interval test had no
# bound to use when it began).
SLOW_SHARE = 0.2


def _together(
    counts: dict[int, float], intervals: dict[int, float], slow: dict[int, float], planned_looks: int
) -> float:
    """The histogram's mixture. Each origin's weight is split between its tests as fixed at
    the origin, so the sum is an e-process as each test is; a test thinned away or not run
    at an origin leaves its part of the weight unused, never moved to the others."""
    rest = 1 - SLOW_SHARE
    together: dict[int, float] = {}
    for origin in counts.keys() | intervals.keys() | slow.keys():
        e = SLOW_SHARE * slow.get(origin, 0.0)
        if origin in intervals:
            e += rest / 2 * (counts.get(origin, 0.0) + intervals[origin])
        else:
            e += rest * counts.get(origin, 0.0)
        together[origin] = e
    return mixture(together, planned_looks)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _requests(c_total: float, b_total: float) -> str:
    return f"{c_total + b_total:,.0f} requests"


def _bad(values: dict[str, float | None], arm: str, total: float) -> int:
    if f"{arm}_bad" in values:
        return round(values[f"{arm}_bad"] or 0)
    # Both counters are scraped together but `increase` extrapolates each on its own.
    return max(round(total - (values[f"{arm}_good"] or 0)), 0)


def _judge_samples(
    gate: CompareGate,
    name: str,
    ctx: GateContext,
    results: dict[str, QueryResult],
    memory: dict[str, Any],
) -> GateVerdict:
    alpha = 1 - gate.confidence
    bound = f"canary ≤ {1 + gate.max_increase:g}× baseline (α={alpha:g})"
    canary, baseline = results["canary"].series, results["baseline"].series
    needed = max(gate.min_samples, 3)
    if len(canary) < needed or len(baseline) < needed:
        return no_data(
            name, f"{len(canary)} canary / {len(baseline)} baseline samples, {needed} needed", bound
        )
    look = int(memory.get("looks", 0)) + 1
    memory["looks"] = look
    planned = max(1, int(ctx.bake / ctx.interval))
    level = spent_alpha(alpha, look, planned)
    shift, low, _high = hodges_lehmann(canary, baseline, 1 - 2 * max(level, 1e-12))
    mean_c, mean_b = sum(canary) / len(canary), sum(baseline) / len(baseline)
    effect = mean_c / mean_b if mean_b else float("inf") if mean_c else 1.0
    tolerance = 0.25 * abs(shift)
    p = mann_whitney_greater(canary, baseline)
    evidence = {"p_value": p, "alpha_this_look": level, "shift": shift, "samples": len(canary)}
    if level > 0 and p <= level and low > tolerance and effect >= 1 + gate.max_increase:
        return GateVerdict(
            gate=name,
            status=Verdict.FAIL,
            value=effect,
            threshold=bound,
            evidence=evidence,
            reason=f"canary {effect:.2f}× baseline (shift {shift:.4g}), p = {p:.2g} ≤ {level:.2g}",
        )
    return GateVerdict(
        gate=name,
        status=Verdict.PASS,
        value=effect,
        threshold=bound,
        evidence=evidence,
        reason=f"canary {effect:.2f}× baseline, p = {p:.2g}",
    )
