"""The bake: evaluate a step's gates every interval until the step passes or fails.

One activity per service-step keeps workflow history small however long the bake and
however short the interval. Its whole state (every gate's counters and memory) is sent
with each heartbeat, so a worker killed mid-bake is replaced without losing evidence.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio import activity

from shiprail.activities.types import BakeRequest, BakeResult, GateSummary
from shiprail.gates import (
    GateContext,
    GateTracker,
    PrometheusSource,
    StepOutcome,
    evaluate,
    gate_interval,
    step_outcome,
)
from shiprail.gates.base import no_data

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
        trackers={name: GateTracker(name=name) for name in request.gates},
        next_due={name: request.step_start + gate.initial_delay for name, gate in request.gates.items()},
    )


def _result(state: _BakeState, outcome: StepOutcome) -> BakeResult:
    summaries = [
        GateSummary(verdict=t.last, evaluations=t.summary(), failed=t.failed)
        for t in state.trackers.values()
        if t.last is not None
    ]
    if outcome is StepOutcome.PASS:
        reason = "; ".join(f"{s.verdict.gate}: {s.verdict.reason}" for s in summaries) or "no gates"
    else:
        reason = "; ".join(f"{t.name}: {t.failure_reason}" for t in state.trackers.values() if t.failed)
    return BakeResult(passed=outcome is StepOutcome.PASS, reason=reason, gates=summaries)


@activity.defn
async def bake(request: BakeRequest) -> BakeResult:
    state = _restore(request)
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
        for name, gate in request.gates.items():
            if now < state.next_due[name]:
                continue
            tracker = state.trackers[name]
            if source is None:
                verdict = no_data(
                    name,
                    "query failed: no Prometheus configured (spec.prometheus.url or"
                    " SHIPRAIL_PROMETHEUS_URL on the worker)",
                )
            else:
                verdict = await asyncio.to_thread(evaluate, name, gate, ctx, source, tracker.memory)
            tracker.record(verdict, gate)
            state.next_due[name] = now + gate_interval(gate, request.interval)
        outcome = step_outcome(list(state.trackers.values()), bake_over=end is not None and now >= end)
        if outcome is not StepOutcome.CONTINUE:
            return _result(state, outcome)
        activity.heartbeat(state.model_dump(mode="json"))
        wake = min([*state.next_due.values(), *([end] if end else [])], default=now)
        await asyncio.sleep(min(_TICK, max((wake - datetime.now(UTC)).total_seconds(), 0.05)))
