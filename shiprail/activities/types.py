"""Inputs and outputs of activities: what crosses into workflow history.

Nothing here may hold a secret: actuator headers are `env:`/`file:` references.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shiprail.actuators.base import ExposureChange
from shiprail.drift import Drift
from shiprail.gates.base import GateVerdict
from shiprail.plan.actuators import Actuator
from shiprail.plan.durations import Duration
from shiprail.plan.models import BudgetPolicy, Gate
from shiprail.status import Exposure


class ReadExposure(BaseModel):
    service: str
    actuator: Actuator


class SetExposure(BaseModel):
    service: str
    actuator: Actuator
    version: str
    weight: float
    rollout_id: str
    idempotency_key: str
    # A restore: the exposure read before the rollout, which the actuator puts back exactly.
    original: Exposure | None = None

    def change(self) -> ExposureChange:
        """The change as the actuator interface takes it."""
        return ExposureChange(
            service=self.service,
            version=self.version,
            weight=self.weight,
            rollout_id=self.rollout_id,
            idempotency_key=self.idempotency_key,
        )


class ExposureOutcome(BaseModel):
    """What became of one change of a batch: applied (no error), refused, or failed."""

    service: str
    error: str | None = None
    rejected: bool = False  # the actuator refused it: retrying cannot help


class ExposureWaves(BaseModel):
    """Waves of changes to apply in order, each wave's changes together; no wave is
    started once `budget` has passed, nor after a wave in which a change failed."""

    waves: list[list[SetExposure]]
    budget: Duration


class BakeRequest(BaseModel):
    """Evaluate `gates` every interval from `step_start` until the step is decided.

    With `bake` None the activity holds: it only returns when a gate fails (pause).
    """

    rollout_id: str
    service: str
    version: str
    stable_version: str
    weight: float
    step_start: datetime
    bake: Duration | None
    interval: Duration
    gates: dict[str, Gate]
    prometheus_url: str | None = None
    prometheus_timeout: Duration | None = None
    # Drift: at the end of a passing bake the exposure is read again and compared.
    actuator: Actuator | None = None
    # What each gate learned of this service's noise in its step before (`BakeResult`):
    # plain numbers, so a step starts knowing them.
    learned: dict[str, dict[str, Any]] = {}


class GateSummary(BaseModel):
    verdict: GateVerdict
    evaluations: str
    failed: bool


class BakeResult(BaseModel):
    passed: bool
    reason: str
    gates: list[GateSummary]
    drift: Drift | None = None
    # By gate, what it learned of the service's noise (`shiprail.gates.learned_noise`).
    learned: dict[str, dict[str, Any]] = {}


class BudgetRequest(BaseModel):
    services: list[str]
    policy: BudgetPolicy
    prometheus_url: str | None = None


class BudgetResult(BaseModel):
    passed: bool
    verdicts: dict[str, GateVerdict]
    at: datetime
