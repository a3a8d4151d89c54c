"""Waiting until a flag change is served: a gate judged before the services have picked
up a change judges the old exposure."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel
from temporalio import activity

from shiprail.activities.types import SetExposure
from shiprail.actuators import for_config
from shiprail.plan.durations import Duration

_POLL = 0.25


class PropagationRequest(BaseModel):
    change: SetExposure
    propagation: Duration


class Propagation(BaseModel):
    served: bool  # seen served (False: the wait ran out, or the actuator cannot tell)
    observable: bool  # the actuator could tell
    seconds: float


@activity.defn
async def await_served(request: PropagationRequest) -> Propagation:
    """Until the actuator sees the change served, or `propagation` has passed."""
    actuator = for_config(request.change.actuator)
    exposure = request.change.change()
    started = time.monotonic()
    deadline = started + request.propagation.total_seconds()
    observable = True
    while True:
        seen = await actuator.served(exposure)
        observable = seen is not None
        if seen:
            return Propagation(served=True, observable=True, seconds=time.monotonic() - started)
        left = deadline - time.monotonic()
        if left <= 0:
            return Propagation(served=False, observable=observable, seconds=time.monotonic() - started)
        activity.heartbeat()
        await asyncio.sleep(min(_POLL if observable else left, left))
