"""Gates: pure judgements over Prometheus results, one module per gate type.

`evaluate` is the single entry point the bake activity and the dry run share.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
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


# A gate's memory while it learns from the step's warm-up (`compare.warm_up_gate`).
WARM_UP = "warm_up"


def warm_up_gate(gate: Gate) -> Gate | None:
    """The gate a look inside `initial_delay` is taken with, None if it takes none."""
    return compare.warm_up_gate(gate) if gate.type == "compare" else None


def first_memory(gate: Gate, learned: dict[str, Any] | None) -> dict[str, Any]:
    """A gate's memory at the start of a step: what the step before learned, kept apart
    while the gate learns from the step's warm-up, if it does."""
    memory = starting_memory(gate, learned)
    return {WARM_UP: memory} if warm_up_gate(gate) is not None else memory


def after_warm_up(gate: Gate, memory: dict[str, Any]) -> dict[str, Any]:
    """The memory of the first judged look: what the warm-up learned of the noise together
    with what the step was carried in (`learned_noise` adds the two), and nothing else."""
    if WARM_UP not in memory:
        return memory
    return starting_memory(gate, learned_noise(gate, memory[WARM_UP]))


def look(
    name: str, gate: Gate, ctx: GateContext, source: PrometheusSource, memory: dict[str, Any]
) -> GateVerdict | None:
    """One look of a bake: during a warm-up the gate learns from it (None, no verdict);
    the first look after it learns the warm-up's last interval, then starts the gate's
    tests from what was learned. `memory` is updated in place."""
    if WARM_UP in memory:
        warm = warm_up_gate(gate)
        if warm is not None:
            evaluate(name, warm, ctx, source, memory[WARM_UP])
        if ctx.elapsed < gate.initial_delay:
            return None
        settled = after_warm_up(gate, memory)
        memory.clear()
        memory.update(settled)
    return evaluate(name, gate, ctx, source, memory)


def next_look(gate: Gate, ctx: GateContext, step_interval: timedelta, memory: dict[str, Any]) -> datetime:
    """When the gate looks next: every interval, and once exactly when its warm-up ends."""
    due = ctx.now + gate_interval(gate, step_interval)
    if WARM_UP in memory:
        due = min(due, ctx.step_start + gate.initial_delay)
    return due


def gate_interval(gate: Gate, step_interval: timedelta) -> timedelta:
    return gate.interval or step_interval


__all__ = [
    "WARM_UP",
    "GateContext",
    "GateTracker",
    "GateVerdict",
    "PrometheusSource",
    "QueryResult",
    "QuerySpec",
    "StepOutcome",
    "Verdict",
    "after_warm_up",
    "evaluate",
    "first_memory",
    "gate_interval",
    "gate_queries",
    "judge",
    "learned_noise",
    "look",
    "next_look",
    "starting_memory",
    "step_outcome",
    "warm_up_gate",
]
