"""What a rollout is started and controlled with.

These models live outside the workflow module on purpose: the sandbox executes a workflow's
own module afresh for every run, and building a pydantic model over the whole plan costs
about 30 ms and 130 KB each time. Passed through, they are built once per worker.
"""

from __future__ import annotations

from pydantic import BaseModel

from shiprail.plan.models import RolloutPlan


class RolloutInput(BaseModel):
    plan: RolloutPlan
    rollout_id: str
    started_by: str = "unknown"
    wait_for_locks: bool = True


class ControlRequest(BaseModel):
    actor: str
    reason: str = ""
    service: str | None = None
