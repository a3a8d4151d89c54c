"""`budget_policy`: is enough error budget left over the period to start a rollout?

remaining = ((1 − T) − bad/total over the period) / (1 − T), request-weighted (Pyrra style).
"""

from __future__ import annotations

from shiprail.gates.base import GateContext, GateVerdict, QueryResult, QuerySpec, Verdict, no_data, prom_range
from shiprail.plan.durations import format_duration
from shiprail.plan.models import BudgetPolicy
from shiprail.plan.templates import render


def queries(policy: BudgetPolicy, ctx: GateContext) -> dict[str, QuerySpec]:
    values = ctx.template_values()
    window = prom_range(policy.period)
    return {
        "bad": QuerySpec(f"sum(increase({render(policy.bad, values)}[{window}])) or vector(0)"),
        "total": QuerySpec(f"sum(increase({render(policy.total, values)}[{window}]))"),
    }


def judge(policy: BudgetPolicy, ctx: GateContext, results: dict[str, QueryResult]) -> GateVerdict:
    name = "budget_policy"
    bound = f"remaining ≥ {policy.min_remaining * 100:g}% of {format_duration(policy.period)} budget"
    for result in results.values():
        if result.error:
            return no_data(name, f"query failed: {result.error}", bound)
    total, bad = results["total"], results["bad"]
    if total.missing or not total.value or bad.value is None:
        return no_data(name, f"no requests for {ctx.service} over {format_duration(policy.period)}", bound)
    allowed = 1 - policy.objective
    remaining = (allowed - bad.value / total.value) / allowed
    ok = remaining >= policy.min_remaining
    reason = (
        f"{remaining * 100:.1f}% of the error budget left ({bad.value:.0f} errors in"
        f" {total.value:.0f} requests over {format_duration(policy.period)})"
    )
    return GateVerdict(
        gate=name,
        status=Verdict.PASS if ok else Verdict.FAIL,
        value=remaining,
        threshold=bound,
        reason=reason,
        evidence={"requests": total.value},
    )
