"""Gates: pure judgements over Prometheus results, one module per gate type.

`evaluate` is the single entry point the bake activity and the dry run share.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import ModuleType
from typing import Any

from shiprail.gates import burn_rate, compare, latency, threshold
from shiprail.gates.base import GateContext, GateVerdict, QueryResult, QuerySpec, Verdict, no_data
from shiprail.gates.prometheus import PrometheusSource
from shiprail.gates.tracker import GateTracker, StepOutcome, step_outcome
from shiprail.plan.models import Gate
from shiprail.plan.templates import UnsafeValue

_KINDS: dict[str, ModuleType] = {
    "threshold": threshold,
    "burn_rate": burn_rate,
    "latency": latency,
    "compare": compare,
}


def gate_queries(gate: Gate, ctx: GateContext) -> dict[str, QuerySpec]:
    result: dict[str, QuerySpec] = _KINDS[gate.type].queries(gate, ctx)
    return result


def judge(
    name: str, gate: Gate, ctx: GateContext, results: dict[str, QueryResult], memory: dict[str, Any]
) -> GateVerdict:
    verdict: GateVerdict = _KINDS[gate.type].judge(gate, name, ctx, results, memory)
    return verdict


def evaluate(
    name: str, gate: Gate, ctx: GateContext, source: PrometheusSource, memory: dict[str, Any]
) -> GateVerdict:
    """Fetch what the gate needs as of `ctx.now` and judge it. Never raises for bad data.

    The gate is judged as of the source's settled instant, a moment before `ctx.now`, so
    its windows end where its queries are evaluated.
    """
    ctx = replace(ctx, now=source.settled(ctx.now))
    try:
        queries = gate_queries(gate, ctx)
    except UnsafeValue as exc:  # a value that would change the query: no data, never a pass
        return no_data(name, f"query not run: {exc}")
    results = source.fetch(queries, ctx.now)
    return judge(name, gate, ctx, results, memory)


def learned_noise(gate: Gate, memory: dict[str, Any]) -> dict[str, Any]:
    """What a gate learned of its service's noise in a step, for the next step of the same
    service (empty where a gate learns nothing worth carrying)."""
    return compare.learned_noise(gate, memory) if gate.type == "compare" else {}


def starting_memory(gate: Gate, learned: dict[str, Any] | None) -> dict[str, Any]:
    """A gate's memory at the start of a step, from what it learned in the step before."""
    return compare.starting_memory(gate, learned) if gate.type == "compare" and learned else {}


def gate_interval(gate: Gate, step_interval: timedelta) -> timedelta:
    return gate.interval or step_interval


__all__ = [
    "GateContext",
    "GateTracker",
    "GateVerdict",
    "PrometheusSource",
    "QueryResult",
    "QuerySpec",
    "StepOutcome",
    "Verdict",
    "evaluate",
    "gate_interval",
    "gate_queries",
    "judge",
    "learned_noise",
    "starting_memory",
    "step_outcome",
]
