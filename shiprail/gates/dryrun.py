"""Every gate of a plan evaluated against live Prometheus: `gates eval`, `plan check --prometheus`.

The same `queries` and `judge` the bake activity calls, with a fresh memory: what a step
that began `since` ago would see now. A sequential `compare` gate learns its noise from the
intervals between its looks, so it is replayed look by look at its interval (at most
`MAX_LOOKS`, spread evenly when the window holds more), as the bake would have seen it, its
warm-up's looks included; one look at the whole window could never reject. Query errors stay visible per gate, so a typo
in PromQL is reported with Prometheus's own message before any rollout depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shiprail.gates import (
    WARM_UP,
    GateContext,
    GateVerdict,
    PrometheusSource,
    QueryResult,
    after_warm_up,
    first_memory,
    gate_queries,
    judge,
    warm_up_gate,
)
from shiprail.gates.base import Verdict
from shiprail.plan.models import CompareGate, Gate, RolloutPlan
from shiprail.plan.resolve import ServiceSettings, resolve_services


@dataclass(frozen=True)
class DryRunRow:
    service: str
    verdict: GateVerdict
    query_errors: dict[str, str] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        """Prometheus refused a query: the plan is wrong, not the data."""
        return any("rejected the query" in e for e in self.query_errors.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "gate": self.verdict.gate,
            "service": self.service,
            "value": self.verdict.value,
            "bound": self.verdict.threshold,
            "verdict": self.verdict.status.value,
            "pending": self.verdict.pending,
            "reason": self.verdict.reason,
            "query_errors": self.query_errors,
        }


def pick_services(plan: RolloutPlan, names: list[str]) -> list[ServiceSettings]:
    services = resolve_services(plan)
    unknown = [n for n in names if n not in {s.name for s in services}]
    if unknown:
        known = ", ".join(s.name for s in services)
        raise ValueError(f"unknown service {', '.join(map(repr, unknown))} (in this plan: {known})")
    return [s for s in services if not names or s.name in names]


def evaluate_plan(
    plan: RolloutPlan,
    services: list[ServiceSettings],
    source: PrometheusSource,
    *,
    at: datetime,
    stable_versions: dict[str, str],
    weight: float | None = None,
    since: timedelta | None = None,
) -> list[DryRunRow]:
    rows: list[DryRunRow] = []
    for s in services:
        ctx = GateContext(
            service=s.name,
            version=s.version,
            stable_version=stable_versions.get(s.name, ""),
            weight=weight if weight is not None else s.steps[0],
            step_start=at - (since if since is not None else s.bake),
            now=at,
            bake=s.bake,
            interval=s.interval,
        )
        for name in s.gates:
            gate = plan.spec.gates[name]
            verdict, results = _replay(name, gate, ctx, source)
            errors = {q: r.error for q, r in results.items() if r.error}
            rows.append(DryRunRow(s.name, verdict, errors))
    return rows


MAX_LOOKS = 60


def _looks(gate: Gate, ctx: GateContext) -> list[datetime]:
    """When the bake would have looked, oldest first, ending at `ctx.now`."""
    if not isinstance(gate, CompareGate) or gate.query is not None:
        return [ctx.now]
    every = gate.interval or ctx.interval
    first = ctx.step_start + gate.initial_delay + every
    if every <= timedelta(0) or first >= ctx.now:
        return [ctx.now]
    count = int((ctx.now - first) / every) + 1
    stride = max(1, -(-count // MAX_LOOKS))
    times = [first + every * i for i in range(0, count, stride)]
    return [t for t in times if t < ctx.now] + [ctx.now]


def _warm_up_looks(gate: Gate, ctx: GateContext) -> list[datetime]:
    """When the bake would have looked inside the warm-up, to learn its noise
    (`compare.warm_up_gate`): every interval from the step's start to the warm-up's end, at
    most `MAX_LOOKS`."""
    every = getattr(gate, "interval", None) or ctx.interval
    end = min(ctx.step_start + gate.initial_delay, ctx.now)
    if warm_up_gate(gate) is None or every <= timedelta(0):
        return []
    count = max(int((end - ctx.step_start) / every), 0)
    stride = max(1, -(-count // MAX_LOOKS))
    return [ctx.step_start + every * i for i in range(1, count + 1, stride)]


def _replay(
    name: str, gate: Gate, ctx: GateContext, source: PrometheusSource
) -> tuple[GateVerdict, dict[str, QueryResult]]:
    memory = first_memory(gate, None)
    warm = warm_up_gate(gate)
    if warm is not None:
        for t in _warm_up_looks(gate, ctx):
            during = replace(ctx, now=t)
            judge(name, warm, during, source.fetch(gate_queries(warm, during), t), memory[WARM_UP])
    memory = after_warm_up(gate, memory)
    times = _looks(gate, ctx)
    spacing = (times[1] - times[0]) if len(times) > 1 else ctx.interval
    verdict, results = GateVerdict(gate=name, status=Verdict.INCONCLUSIVE), {}
    for t in times:
        look = replace(ctx, now=t, interval=spacing) if len(times) > 1 else ctx
        results = source.fetch(gate_queries(gate, look), t)
        verdict = judge(name, gate, look, results, memory)
        if verdict.status is Verdict.FAIL or any(r.error for r in results.values()):
            break
    return verdict, results
