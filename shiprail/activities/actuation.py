"""Activities that read and set exposure through a service's actuator."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shiprail.activities.types import ReadExposure, SetExposure
from shiprail.actuators import ExposureChange, PermanentActuatorError, for_config
from shiprail.status import Exposure

# The failure type of an actuator's refusal (4xx, a wrong answer): retrying cannot help.
REJECTED = "ActuatorRejected"


@activity.defn
async def read_exposure(request: ReadExposure) -> Exposure:
    try:
        exposure = await for_config(request.actuator).read(request.service)
    except PermanentActuatorError as exc:
        raise ApplicationError(str(exc), type=REJECTED, non_retryable=True) from None
    if exposure.service != request.service:
        raise ApplicationError(
            f"actuator answered for service {exposure.service!r}, asked for {request.service!r}",
            type=REJECTED,
            non_retryable=True,
        )
    return exposure


@activity.defn
async def set_exposure(request: SetExposure) -> None:
    change = ExposureChange(
        service=request.service,
        version=request.version,
        weight=request.weight,
        rollout_id=request.rollout_id,
        idempotency_key=request.idempotency_key,
    )
    try:
        await for_config(request.actuator).apply(change)
    except PermanentActuatorError as exc:
        raise ApplicationError(str(exc), type=REJECTED, non_retryable=True) from None
