"""`compare`: the canary against its baseline (stable serving the same traffic, same time).

Counts (`bad` or `good`, and `total`): an anytime-valid sequential test (Lindon & Malek 2022)
on bad requests, errors or requests slower than a histogram bucket. Bad requests of both
arms since the step began are a Poisson process; under H0 the canary's share of them equals
its share of traffic (moved by `max_increase`). The p-value is the
running minimum over all looks, and it stays valid however often we look, so the gate can
fail early without inflating false rollbacks.

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
    hodges_lehmann,
    mann_whitney_greater,
    sequential_p_value,
    spent_alpha,
    tolerated_share,
)
from shiprail.plan.models import CompareGate
from shiprail.plan.templates import render


def _versions(gate: CompareGate, ctx: GateContext) -> tuple[dict[str, str], dict[str, str]]:
    canary = ctx.template_values()
    baseline = dict(canary, version=render(gate.baseline_version, canary))
    return canary, baseline


def queries(gate: CompareGate, ctx: GateContext) -> dict[str, QuerySpec]:
    if ctx.weight >= 100:
        return {}
    canary, baseline = _versions(gate, ctx)
    # Evidence starts after `initial_delay`: a canary's warm-up (cold caches, JIT) is not
    # the release's steady state, and the sequential test would remember it for good.
    judged = max(ctx.elapsed - gate.initial_delay, timedelta(0))
    window = prom_range(judged)
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
    p = sequential_p_value(b_bad, c_bad, null_share, gate.prior_strength, float(memory.get("min_p", 1.0)))
    memory["min_p"] = p
    c_rate, b_rate = c_bad / c_total, b_bad / b_total
    ratio = c_rate / b_rate if b_rate > 0 else (float("inf") if c_rate > 0 else 1.0)
    worse = c_bad + b_bad > 0 and c_bad / (c_bad + b_bad) > null_share
    evidence = {
        "canary_errors": c_bad,
        "canary_requests": c_total,
        "baseline_errors": b_bad,
        "baseline_requests": b_total,
        "p_value": p,
    }
    ratio_text = f"{ratio:.1f}× baseline" if b_rate > 0 else f"{fmt_ratio(c_rate)} vs baseline 0%"
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    requests = f"{c_total + b_total:,.0f} requests"
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
