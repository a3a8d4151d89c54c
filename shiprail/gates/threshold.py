"""`threshold`: a scalar query within `[min, max]`."""

from __future__ import annotations

from typing import Any

from shiprail.gates.base import GateContext, GateVerdict, QueryResult, QuerySpec, Verdict, no_data, too_few
from shiprail.plan.models import ThresholdGate
from shiprail.plan.templates import render


def _bound(gate: ThresholdGate) -> str:
    if gate.min is not None and gate.max is not None:
        return f"{gate.min:g} ≤ x ≤ {gate.max:g}"
    return f"≤ {gate.max:g}" if gate.max is not None else f"≥ {gate.min:g}"


def queries(gate: ThresholdGate, ctx: GateContext) -> dict[str, QuerySpec]:
    values = ctx.template_values()
    specs = {"value": QuerySpec(render(gate.query, values))}
    if gate.samples:
        specs["samples"] = QuerySpec(render(gate.samples, values))
    return specs


def judge(
    gate: ThresholdGate,
    name: str,
    ctx: GateContext,
    results: dict[str, QueryResult],
    memory: dict[str, Any],
) -> GateVerdict:
    bound = _bound(gate)
    result = results["value"]
    if result.error:
        return no_data(name, f"query failed: {result.error}", bound)
    if result.missing:
        return no_data(name, "query returned no data (empty result or NaN)", bound)
    if gate.samples:
        samples = results["samples"]
        if samples.missing:
            return no_data(name, "sample-count query returned no data", bound)
        assert samples.value is not None
        if samples.value < gate.min_samples:
            return no_data(
                name,
                too_few(samples.value, "samples", gate.min_samples),
                bound,
                samples=samples.value,
            )
    value = result.value
    assert value is not None
    too_low = gate.min is not None and value < gate.min
    too_high = gate.max is not None and value > gate.max
    status = Verdict.FAIL if too_low or too_high else Verdict.PASS
    if too_low:
        reason = f"{value:.4g} < min {gate.min:g}"
    elif too_high:
        reason = f"{value:.4g} > max {gate.max:g}"
    else:
        reason = f"{value:.4g} within {bound}"
    return GateVerdict(gate=name, status=status, value=value, threshold=bound, reason=reason)
