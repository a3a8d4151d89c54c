"""`compare`: the canary against its baseline (stable serving the same traffic, same time).

Counts (`bad` or `good`, and `total`): an anytime-valid sequential test (Lindon & Malek 2022)
on bad requests, errors or requests slower than a histogram bucket. Bad requests of both
arms since the step began are a Poisson process; under H0 the canary's share of them is at
most its share of traffic (moved by `max_increase`). The test's Bayes factor is an e-value;
the p-value is 1 / its running maximum over all looks, and it stays valid however often we
look, so the gate can fail early without inflating false rollbacks.

Histogram (`histogram`): the same test at every bucket bound of a latency histogram, on
the requests slower than that bound, so a regression shows wherever in the distribution
it is largest, with no bound picked in advance: a +20 % shift of the median moves the share
slower than a bound near the median by half, while the share beyond an SLO bound far in the
tail barely moves. The bounds' e-values are averaged: a good canary is good at every bound,
and under that null the average is an e-value too. It needs no more evidence than a
Bonferroni split (α per bound ÷ number of bounds) at the strongest bound, and less when
neighbouring bounds see the same shift, as they do when a whole distribution moves.

Samples (`query`): a one-sided Mann–Whitney test on the two series over the step, with a
Hodges–Lehmann shift that must clear a tolerance band, and alpha spent across the looks of
the bake so repeated judgements do not inflate false rollbacks either.

At 100 % there is no baseline traffic: the gate does not apply and says so.
"""

from __future__ import annotations

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
from shiprail.gates.stats import (
    e_value,
    hodges_lehmann,
    mann_whitney_greater,
    spent_alpha,
    tolerated_share,
)
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
        return _judge_histogram(gate, name, results, memory)
    if gate.total is not None:
        return _judge_counts(gate, name, results, memory)
    return _judge_samples(gate, name, ctx, results, memory)


def _judge_counts(
    gate: CompareGate, name: str, results: dict[str, QueryResult], memory: dict[str, Any]
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
    rho = c_total / (c_total + b_total)
    null_share = tolerated_share(rho, gate.max_increase)
    e_now = _worse_e_value(c_bad, b_bad, null_share, gate.prior_strength)
    p = _running_p(memory, e_now)
    worse = e_now > 0
    c_rate, b_rate = c_bad / c_total, b_bad / b_total
    ratio = c_rate / b_rate if b_rate > 0 else (float("inf") if c_rate > 0 else 1.0)
    evidence = {
        "canary_errors": c_bad,
        "canary_requests": c_total,
        "baseline_errors": b_bad,
        "baseline_requests": b_total,
        "p_value": p,
    }
    ratio_text = f"{ratio:.1f}× baseline" if b_rate > 0 else f"{fmt_ratio(c_rate)} vs baseline 0%"
    p_text, requests = _p_text(p), _requests(c_total, b_total)
    if worse and p <= alpha:
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
    )


def _judge_histogram(
    gate: CompareGate, name: str, results: dict[str, QueryResult], memory: dict[str, Any]
) -> GateVerdict:
    alpha = 1 - gate.confidence
    canary, baseline = results["canary"].by_label, results["baseline"].by_label
    bounds = sorted((le for le in canary.keys() & baseline.keys() if le != _INF), key=float)
    bound = (
        f"canary's share slower than any bucket bound ≤ {1 + gate.max_increase:g}× baseline's (α={alpha:g})"
    )
    c_total, b_total = canary.get(_INF, 0.0), baseline.get(_INF, 0.0)
    if not bounds or not c_total or not b_total:
        return no_data(name, "no histogram traffic on the canary or the baseline", bound)
    if c_total < gate.min_samples:
        return no_data(name, too_few(c_total, "canary requests", gate.min_samples), bound, requests=c_total)
    null_share = tolerated_share(c_total / (c_total + b_total), gate.max_increase)
    slower = {
        le: (max(round(c_total - canary[le]), 0), max(round(b_total - baseline[le]), 0)) for le in bounds
    }
    e_values = {le: _worse_e_value(c, b, null_share, gate.prior_strength) for le, (c, b) in slower.items()}
    p = _running_p(memory, sum(e_values.values()) / len(bounds))
    requests = _requests(c_total, b_total)
    le = max(bounds, key=lambda b: e_values[b])
    if e_values[le] == 0:
        return GateVerdict(
            gate=name,
            status=Verdict.PASS,
            value=1.0,
            threshold=bound,
            reason=f"canary no slower than baseline at any of {len(bounds)} bucket bounds after {requests}",
            evidence={
                "canary_requests": c_total,
                "baseline_requests": b_total,
                "bounds": len(bounds),
                "p_value": p,
            },
        )
    c_share, b_share = slower[le][0] / c_total, slower[le][1] / b_total
    ratio = c_share / b_share if b_share > 0 else float("inf")
    evidence = {
        "le": le,
        "canary_share": c_share,
        "baseline_share": b_share,
        "canary_requests": c_total,
        "baseline_requests": b_total,
        "bounds": len(bounds),
        "p_value": p,
    }
    shares = f"{fmt_ratio(c_share)} of canary requests slower than le={le} vs baseline {fmt_ratio(b_share)}"
    failed = p <= alpha
    return GateVerdict(
        gate=name,
        status=Verdict.FAIL if failed else Verdict.PASS,
        value=ratio if b_share > 0 else None,
        threshold=bound,
        reason=f"{shares}, {_p_text(p)} over {len(bounds)} bounds after {requests}",
        evidence=evidence,
    )


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _requests(c_total: float, b_total: float) -> str:
    return f"{c_total + b_total:,.0f} requests"


def _worse_e_value(c_bad: int, b_bad: int, null_share: float, prior: float) -> float:
    """The e-value of this look if the canary has more than its tolerated share of bad
    requests now, else 0.

    Even one-sided, the Bayes factor can stay above 1/α for a while after the canary's
    share has fallen back under the line; a look where it is not worse never fails the gate.
    Zero is below any e-value, so dropping those looks keeps the test valid.
    """
    worse = c_bad + b_bad > 0 and c_bad / (c_bad + b_bad) > null_share
    return e_value(b_bad, c_bad, null_share, prior) if worse else 0.0


def _running_p(memory: dict[str, Any], e_now: float) -> float:
    """1 / the largest e-value seen at any look of this bake, kept in the gate's memory."""
    memory["e_max"] = max(float(memory.get("e_max", 0.0)), e_now)
    return min(1.0, 1.0 / memory["e_max"]) if memory["e_max"] > 0 else 1.0


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
