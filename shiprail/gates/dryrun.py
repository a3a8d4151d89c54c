"""Every gate of a plan evaluated once against live Prometheus: `gates eval`, `plan check --prometheus`.

The same `queries` and `judge` the bake activity calls, with a fresh memory: what a step
that began `since` ago would see now. Query errors stay visible per gate, so a typo in
PromQL is reported with Prometheus's own message before any rollout depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shiprail.gates import GateContext, GateVerdict, PrometheusSource, gate_queries, judge
from shiprail.plan.models import RolloutPlan
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
            results = source.fetch(gate_queries(gate, ctx), at)
            errors = {q: r.error for q, r in results.items() if r.error}
            rows.append(DryRunRow(s.name, judge(name, gate, ctx, results, {}), errors))
    return rows
