"""`latency`: a latency SLO from a Prometheus histogram.

Two forms: the quantile (`histogram_quantile(q, …) ≤ max`), or the SLI "fraction of
requests faster than T ≥ objective" read straight from the bucket counters, which is exact
where the quantile is interpolated between bucket bounds.
"""

from __future__ import annotations

from typing import Any

from shiprail.gates.base import (
    GateContext,
    GateVerdict,
    QueryResult,
    QuerySpec,
    Verdict,
    no_data,
    prom_range,
    too_few,
)
from shiprail.plan.models import LatencyGate
from shiprail.plan.templates import render, with_label


def _bound(gate: LatencyGate) -> str:
    if gate.faster_than is not None and gate.objective is not None:
        return f"≥ {gate.objective * 100:g}% faster than {gate.faster_than * 1000:g}ms"
    assert gate.quantile is not None and gate.max is not None
    return f"p{gate.quantile * 100:g} ≤ {gate.max * 1000:g}ms"


def queries(gate: LatencyGate, ctx: GateContext) -> dict[str, QuerySpec]:
    selector = render(gate.histogram, ctx.template_values())
    window = prom_range(min(gate.window, ctx.elapsed) if ctx.elapsed.total_seconds() > 0 else gate.window)
    count = QuerySpec(f"sum(increase({with_label(selector, 'le', '+Inf')}[{window}]))")
    if gate.faster_than is not None:
        fast = with_label(selector, "le", f"{gate.faster_than:g}")
        return {"count": count, "fast": QuerySpec(f"sum(increase({fast}[{window}]))")}
    return {
        "count": count,
        "quantile": QuerySpec(
            f"histogram_quantile({gate.quantile:g}, sum by (le) (rate({selector}[{window}])))"
        ),
    }


def judge(
    gate: LatencyGate,
    name: str,
    ctx: GateContext,
    results: dict[str, QueryResult],
    memory: dict[str, Any],
) -> GateVerdict:
    bound = _bound(gate)
    for result in results.values():
        if result.error:
            return no_data(name, f"query failed: {result.error}", bound)
    count = results["count"]
    if count.missing or not count.value:
        return no_data(name, "no requests in the window", bound)
    if count.value < gate.min_samples:
        return no_data(name, too_few(count.value, "requests", gate.min_samples), bound, requests=count.value)
    requests = count.value
    if gate.faster_than is not None and gate.objective is not None:
        fast = results["fast"]
        if fast.missing:
            return no_data(name, f'no bucket le="{gate.faster_than:g}" in the histogram', bound)
        assert fast.value is not None
        share = fast.value / requests
        ok = share >= gate.objective
        reason = (
            f"{share * 100:.2f}% of {requests:.0f} requests faster than {gate.faster_than * 1000:g}ms"
            f" ({'≥' if ok else '<'} {gate.objective * 100:g}%)"
        )
        return GateVerdict(
            gate=name,
            status=Verdict.PASS if ok else Verdict.FAIL,
            value=share,
            threshold=bound,
            reason=reason,
            evidence={"requests": requests},
        )
    quantile = results["quantile"]
    if quantile.missing:
        return no_data(name, "histogram_quantile returned no data (NaN)", bound)
    assert quantile.value is not None and gate.max is not None and gate.quantile is not None
    ok = quantile.value <= gate.max
    reason = (
        f"p{gate.quantile * 100:g} {quantile.value * 1000:.0f}ms {'≤' if ok else '>'}"
        f" {gate.max * 1000:g}ms on {requests:.0f} requests"
    )
    return GateVerdict(
        gate=name,
        status=Verdict.PASS if ok else Verdict.FAIL,
        value=quantile.value,
        threshold=bound,
        reason=reason,
        evidence={"requests": requests},
    )
