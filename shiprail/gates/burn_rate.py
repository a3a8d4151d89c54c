"""`burn_rate`: SLO error-budget burn over several window pairs, SRE-workbook style.

burn = error ratio / (1 − objective). A window pair fails when both its long and its short
window burn faster than `max_burn`; the short window makes the gate recover quickly once
errors stop. Windows are clipped to the time since the step began, so a fresh canary is
judged on its own traffic, not on the previous step's.
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
from shiprail.plan.durations import format_duration
from shiprail.plan.models import BurnRateGate
from shiprail.plan.templates import render


def _clip(window: timedelta, ctx: GateContext) -> timedelta:
    return min(window, ctx.elapsed) if ctx.elapsed > timedelta(0) else window


def _increase(selector: str, window: timedelta) -> str:
    # `or vector(0)`: a canary with no 5xx series at all has zero bad requests, not "no data".
    return f"sum(increase({selector}[{prom_range(window)}])) or vector(0)"


def queries(gate: BurnRateGate, ctx: GateContext) -> dict[str, QuerySpec]:
    values = ctx.template_values()
    bad, total = render(gate.bad, values), render(gate.total, values)
    specs: dict[str, QuerySpec] = {}
    for i, pair in enumerate(gate.windows):
        for kind, window in (("long", pair.long), ("short", pair.short)):
            clipped = _clip(window, ctx)
            specs[f"bad_{i}_{kind}"] = QuerySpec(_increase(bad, clipped))
            specs[f"total_{i}_{kind}"] = QuerySpec(f"sum(increase({total}[{prom_range(clipped)}]))")
    return specs


def judge(
    gate: BurnRateGate,
    name: str,
    ctx: GateContext,
    results: dict[str, QueryResult],
    memory: dict[str, Any],
) -> GateVerdict:
    budget = 1 - gate.objective
    bound = ", ".join(
        f"{w.max_burn:g}× over {format_duration(w.long)}/{format_duration(w.short)}" for w in gate.windows
    )
    for result in results.values():
        if result.error:
            return no_data(name, f"query failed: {result.error}", bound)
    worst: tuple[float, str] | None = None
    for i, pair in enumerate(gate.windows):
        burns: dict[str, float] = {}
        requests = 0.0
        for kind in ("long", "short"):
            bad, total = results[f"bad_{i}_{kind}"], results[f"total_{i}_{kind}"]
            if total.missing or bad.missing or not total.value:
                return no_data(name, "no requests in the window", bound)
            assert bad.value is not None
            burns[kind] = (bad.value / total.value) / budget
            if kind == "long":
                requests = total.value
        if requests < max(gate.min_samples, 1):
            return no_data(name, too_few(requests, "requests", gate.min_samples), bound, requests=requests)
        ratio = burns["long"] * budget
        if burns["long"] > pair.max_burn and burns["short"] > pair.max_burn:
            reason = (
                f"error ratio {fmt_ratio(ratio)} burns budget {burns['long']:.1f}× (long) and"
                f" {burns['short']:.1f}× (short) > {pair.max_burn:g}× on {requests:.0f} requests"
                f" over {format_duration(_clip(pair.long, ctx))}"
            )
            return GateVerdict(
                gate=name,
                status=Verdict.FAIL,
                value=burns["long"],
                threshold=bound,
                reason=reason,
                evidence={"requests": requests, "error_ratio": ratio},
            )
        text = (
            f"burn {burns['long']:.2f}× ≤ {pair.max_burn:g}× (error ratio {fmt_ratio(ratio)}"
            f" on {requests:.0f} requests)"
        )
        if worst is None or burns["long"] > worst[0]:
            worst = (burns["long"], text)
    assert worst is not None
    return GateVerdict(gate=name, status=Verdict.PASS, value=worst[0], threshold=bound, reason=worst[1])
