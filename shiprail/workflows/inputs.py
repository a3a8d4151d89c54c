"""What rollouts and trains are started and controlled with.

These models live outside the workflow modules on purpose: the sandbox executes a workflow's
own module afresh for every run, and building a pydantic model over the whole plan costs
about 30 ms and 130 KB each time. Passed through, they are built once per worker.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shiprail.plan.cars import Car
from shiprail.plan.models import BudgetPolicy, DeployWindows, RolloutPlan
from shiprail.plan.train import ReleaseTrain


class Signed(BaseModel):
    """Who asks, and, for rollouts and trains with `spec.access`, the proof (shiprail.authz)."""

    actor: str
    nonce: str = ""
    issued_at: datetime | None = None
    signature: str = ""


class ControlRequest(Signed):
    reason: str = ""
    service: str | None = None


class Refusal(BaseModel):
    """A control request the validators refused, reported so the audit log shows it."""

    action: str
    actor: str
    reason: str


class RolloutInput(BaseModel):
    plan: RolloutPlan
    rollout_id: str
    started_by: str = "unknown"
    wait_for_locks: bool = True
    # A car of a release train: the train's name, and its windows and budget policy, which
    # apply on top of the plan's own.
    train: str | None = None
    train_windows: DeployWindows | None = None
    train_budget_policy: BudgetPolicy | None = None
    # Started with `--override-window`: steps do not wait for deploy windows.
    window_override: ControlRequest | None = None


class BoardRequest(Signed):
    car: Car


class UnboardRequest(Signed):
    car: str
    reason: str = ""


class SkipRequest(Signed):
    departs: datetime
    reason: str


class TriggerRequest(Signed):
    """`train trigger`: the triggered departure also takes the cars booked up to `upto`."""

    upto: datetime | None


class ConfigureRequest(Signed):
    train: ReleaseTrain


class PauseRequest(Signed):
    """`train pause` (paused) or `train resume`; signed as that action."""

    paused: bool
    reason: str = ""

    @property
    def action(self) -> str:
        return "pause" if self.paused else "resume"


class ClaimRequest(BaseModel):
    train: str
    departure_id: str
    scheduled: datetime


class Claim(BaseModel):
    train: ReleaseTrain
    cars: list[Car] = Field(default_factory=list)


class DepartureInput(BaseModel):
    train: str
