"""The bake: evaluate a step's gates every interval until the step passes or fails.

One activity per service-step keeps workflow history small however long the bake and
however short the interval. Its whole state (every gate's counters and memory) is sent
with each heartbeat, so a worker killed mid-bake is replaced without losing evidence.
"""

from __future__ import annotations

import asyncio
import copy
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from shiprail.activities.actuation import REJECTED
from shiprail.activities.types import BakeRequest, BakeResult, GateSummary
from shiprail.actuators import PermanentActuatorError, for_config
from shiprail.drift import Drift, detect
from shiprail.gates import (
    GateContext,
    GateTracker,
    PrometheusSource,
    StepOutcome,
    after_warm_up,
    first_memory,
    learned_noise,
    look,
    next_look,
    step_outcome,
    warm_up_gate,
)
from shiprail.gates.base import GateVerdict, no_data
from shiprail.plan.models import Gate

_TICK = 1.0  # seconds between heartbeats; cancellation is noticed this fast


class _BakeState(BaseModel):
    trackers: dict[str, GateTracker]
    next_due: dict[str, datetime]


def prometheus_url(configured: str | None) -> str | None:
    return configured or os.environ.get("SHIPRAIL_PROMETHEUS_URL")


def _restore(request: BakeRequest) -> _BakeState:
    details = activity.info().heartbeat_details
    if details:
        return _BakeState.model_validate(details[0])
    return _BakeState(
        trackers={
            name: GateTracker(name=name, memory=first_memory(gate, request.learned.get(name)))
            for name, gate in request.gates.items()
        },
        next_due={name: _first_look(gate, request) for name, gate in request.gates.items()},
    )


def _first_look(gate: Gate, request: BakeRequest) -> datetime:
    """A gate that learns from the warm-up looks from its first interval, any other from
    the end of its `initial_delay`."""
    if warm_up_gate(gate) is None:
        return request.step_start + gate.initial_delay
    return request.step_start + min(gate.interval or request.interval, gate.initial_delay)


def _result(state: _BakeState, outcome: StepOutcome, request: BakeRequest) -> BakeResult:
    summaries = [
        GateSummary(verdict=t.last, evaluations=t.summary(), failed=t.failed)
        for t in state.trackers.values()
        if t.last is not None
    ]
    if outcome is StepOutcome.PASS:
        reason = "; ".join(f"{s.verdict.gate}: {s.verdict.reason}" for s in summaries) or "no gates"
    else:
        reason = "; ".join(f"{t.name}: {t.failure_reason}" for t in state.trackers.values() if t.failed)
    learned = {
        name: learned_noise(request.gates[name], after_warm_up(request.gates[name], t.memory))
        for name, t in state.trackers.items()
    }
    return BakeResult(
        passed=outcome is StepOutcome.PASS,
        reason=reason,
        gates=summaries,
        learned={name: x for name, x in learned.items() if x},
    )


@activity.defn
async def bake(request: BakeRequest) -> BakeResult:
    state = _restore(request)
    # Heartbeats come from their own task: one round of queries against a failing
    # Prometheus can outlast the heartbeat timeout, and a bake that never heartbeats is
    # retried from its last heartbeat forever instead of failing closed.
    alive = asyncio.create_task(_keep_alive(state))
    try:
        return await _evaluate_until_decided(request, state)
    finally:
        alive.cancel()


async def _keep_alive(state: _BakeState) -> None:
    while True:
        activity.heartbeat(state.model_dump(mode="json"))
        await asyncio.sleep(_TICK)


async def _evaluate_until_decided(request: BakeRequest, state: _BakeState) -> BakeResult:
    url = prometheus_url(request.prometheus_url)
    source = PrometheusSource(url, request.prometheus_timeout or timedelta(seconds=10)) if url else None
    end = request.step_start + request.bake if request.bake is not None else None
    while True:
        now = datetime.now(UTC)
        ctx = GateContext(
            service=request.service,
            version=request.version,
            stable_version=request.stable_version,
            weight=request.weight,
            step_start=request.step_start,
            now=now,
            bake=request.bake or timedelta(0),
            interval=request.interval,
        )
        due = [name for name in request.gates if now >= state.next_due[name]]
        judged = await asyncio.gather(*(_judge(name, request, ctx, source, state) for name in due))
        for name, (verdict, memory) in zip(due, judged, strict=True):
            state.trackers[name].memory = memory
            if verdict is not None:  # None: a look that only learned from the warm-up
                state.trackers[name].record(verdict, request.gates[name])
            state.next_due[name] = next_look(request.gates[name], ctx, request.interval, memory)
        outcome = step_outcome(list(state.trackers.values()), bake_over=end is not None and now >= end)
        if outcome is StepOutcome.PASS and request.actuator is not None:
            return _result(state, outcome, request).model_copy(update={"drift": await _drift(request)})
        if outcome is not StepOutcome.CONTINUE:
            return _result(state, outcome, request)
        wake = min([*state.next_due.values(), *([end] if end else [])], default=now)
        await asyncio.sleep(min(_TICK, max((wake - datetime.now(UTC)).total_seconds(), 0.05)))


async def _drift(request: BakeRequest) -> Drift | None:
    """Read the exposure once more at the end of the bake: a step is only promoted from the
    exposure the rollout set. A read that fails is retried with the activity, never passed."""
    assert request.actuator is not None
    try:
        found = await for_config(request.actuator).read(request.service)
    except PermanentActuatorError as exc:
        raise ApplicationError(f"re-reading the exposure: {exc}", type=REJECTED, non_retryable=True) from None
    return detect(request.service, request.weight, found)


async def _judge(
    name: str, request: BakeRequest, ctx: GateContext, source: PrometheusSource | None, state: _BakeState
) -> tuple[GateVerdict | None, dict[str, Any]]:
    # The gate works on a copy of its memory: the heartbeat task serialises the original
    # while the query runs in a thread.
    memory = copy.deepcopy(state.trackers[name].memory)
    if source is None:
        reason = "query failed: no Prometheus configured (spec.prometheus.url or SHIPRAIL_PROMETHEUS_URL on the worker)"
        return no_data(name, reason), memory
    verdict = await asyncio.to_thread(look, name, request.gates[name], ctx, source, memory)
    return verdict, memory
