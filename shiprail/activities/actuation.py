"""Activities that read and set exposure through a service's actuator."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shiprail.activities.types import ExposureOutcome, ExposureWaves, ReadExposure, SetExposure
from shiprail.actuators import PermanentActuatorError, for_config
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
    try:
        await _apply(request)
    except PermanentActuatorError as exc:
        raise ApplicationError(str(exc), type=REJECTED, non_retryable=True) from None


@activity.defn
async def set_exposures(requests: list[SetExposure]) -> list[ExposureOutcome]:
    """Apply every change at once, one attempt each, and report each one's outcome.

    How a rollback restored each wave before `set_exposure_waves`; kept for rollbacks of
    that release still running. A failure is reported, not raised, so the services that
    were restored stay known and only the others are retried.
    """
    return await _together(requests)


@activity.defn
async def set_exposure_waves(request: ExposureWaves) -> list[list[ExposureOutcome]]:
    """Apply waves in order, each wave's changes together, one attempt each; report the
    outcomes of the waves applied.

    A rollback restores consumers before what they depend on, so a wave may start only
    once the one before it is answered. Walking the waves here, back to back, saves a
    workflow activation between every two. It starts no wave after one in which anything
    failed, since the workflow retries that first, nor once `budget` has passed.
    """
    started = time.monotonic()
    applied: list[list[ExposureOutcome]] = []
    for wave in request.waves:
        if applied and (
            any(o.error is not None for o in applied[-1])
            or time.monotonic() - started >= request.budget.total_seconds()
        ):
            break
        applied.append(await _together(wave))
    return applied


async def _together(requests: list[SetExposure]) -> list[ExposureOutcome]:
    return list(await asyncio.gather(*(_outcome(r) for r in requests)))


async def _outcome(request: SetExposure) -> ExposureOutcome:
    try:
        await _apply(request)
    except PermanentActuatorError as exc:
        return ExposureOutcome(service=request.service, error=str(exc), rejected=True)
    except Exception as exc:  # any other failure is worth a durable retry
        return ExposureOutcome(service=request.service, error=str(exc) or type(exc).__name__)
    return ExposureOutcome(service=request.service)


async def _apply(request: SetExposure) -> None:
    change = request.change()
    actuator = for_config(request.actuator)
    if request.original is not None:
        await actuator.restore(change, request.original)
    else:
        await actuator.apply(change)
