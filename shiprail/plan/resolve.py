"""Effective per-service settings (defaults merged with overrides) and the step schedule."""

from __future__ import annotations

import heapq
from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from shiprail.plan.actuators import Actuator
from shiprail.plan.durations import Duration
from shiprail.plan.models import Approval, RolloutPlan
from shiprail.plan.waves import compute_waves


class ServiceSettings(BaseModel):
    """Everything the engine needs to roll one service, with defaults applied."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    depends_on: list[str]
    actuator: Actuator
    steps: list[float]
    bake: Duration
    interval: Duration
    gates: list[str]
    approval: Approval
    wave: int
    propagation: Duration = timedelta(seconds=30)


def plan_waves(plan: RolloutPlan) -> list[list[str]]:
    return compute_waves({s.name: s.depends_on for s in plan.spec.services})


def resolve_services(plan: RolloutPlan) -> list[ServiceSettings]:
    defaults = plan.spec.defaults
    wave_of = {name: i for i, wave in enumerate(plan_waves(plan)) for name in wave}
    return [
        ServiceSettings(
            name=s.name,
            version=s.version,
            depends_on=list(s.depends_on),
            actuator=s.actuator,
            steps=list(s.steps if s.steps is not None else defaults.steps),
            bake=s.bake if s.bake is not None else defaults.bake,
            interval=s.interval if s.interval is not None else defaults.interval,
            gates=list(s.gates if s.gates is not None else defaults.gates),
            approval=s.approval if s.approval is not None else defaults.approval,
            wave=wave_of[s.name],
            propagation=s.propagation if s.propagation is not None else defaults.propagation,
        )
        for s in plan.spec.services
    ]


class ScheduledStep(BaseModel):
    service: str
    wave: int
    index: int
    weight: float
    start: Duration  # offset from the start of the rollout, at the earliest
    bake: Duration


class Schedule(BaseModel):
    waves: list[list[str]]
    steps: list[ScheduledStep]
    total: Duration
    needs_approval: bool


def _service_duration(service: ServiceSettings) -> timedelta:
    return service.bake * len(service.steps)


def build_schedule(plan: RolloutPlan) -> Schedule:
    """The shortest possible timeline: every gate passes at the end of every bake."""
    services = {s.name: s for s in resolve_services(plan)}
    waves = plan_waves(plan)
    steps: list[ScheduledStep] = []
    clock = timedelta(0)
    for wave_index, wave in enumerate(waves):
        members = [services[name] for name in wave]
        if plan.spec.lockstep:
            offset = timedelta(0)
            for index in range(len(members[0].steps)):
                for s in members:
                    steps.append(
                        ScheduledStep(
                            service=s.name,
                            wave=wave_index,
                            index=index,
                            weight=s.steps[index],
                            start=clock + offset,
                            bake=s.bake,
                        )
                    )
                offset += max(s.bake for s in members)
            clock += offset
            continue
        slots = plan.spec.max_parallel or len(members)
        free_at = [timedelta(0)] * min(slots, len(members))
        heapq.heapify(free_at)
        wave_end = timedelta(0)
        for s in members:
            start = heapq.heappop(free_at)
            for index, weight in enumerate(s.steps):
                steps.append(
                    ScheduledStep(
                        service=s.name,
                        wave=wave_index,
                        index=index,
                        weight=weight,
                        start=clock + start + s.bake * index,
                        bake=s.bake,
                    )
                )
            end = start + _service_duration(s)
            wave_end = max(wave_end, end)
            heapq.heappush(free_at, end)
        clock += wave_end
    return Schedule(
        waves=waves,
        steps=steps,
        total=clock,
        needs_approval=any(s.approval != "none" for s in services.values()),
    )
