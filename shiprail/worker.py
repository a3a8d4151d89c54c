"""The one place that registers every workflow and activity on task queue `shiprail`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from shiprail.activities import actuation, bake, budget, locks, notify, propagation, trains
from shiprail.actuators.http import close_sessions
from shiprail.client import TASK_QUEUE
from shiprail.workflows.departure import DepartureWorkflow
from shiprail.workflows.lock import ServiceLockWorkflow
from shiprail.workflows.rollout import RolloutWorkflow
from shiprail.workflows.train import TrainWorkflow

WORKFLOWS = [RolloutWorkflow, ServiceLockWorkflow, TrainWorkflow, DepartureWorkflow]
ACTIVITIES: list[Callable[..., Any]] = [
    actuation.read_exposure,
    actuation.set_exposure,
    actuation.set_exposures,
    actuation.set_exposure_waves,
    bake.bake,
    budget.check_budget,
    locks.lock_holder,
    trains.claim_cars,
    notify.notify,
    propagation.await_served,
]


@asynccontextmanager
async def running_worker(
    client: Client, *, task_queue: str = TASK_QUEUE, max_concurrent_activities: int = 1000
) -> AsyncIterator[Worker]:
    """A worker polling until the block ends; then, once its activities are done, the
    actuators' pooled connections are closed."""
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=ACTIVITIES,
            max_concurrent_activities=max_concurrent_activities,
            # Baking activities learn of a cancellation (a sibling failed, a human aborted) at
            # their next heartbeat; throttled to at most this, so rollbacks start promptly.
            max_heartbeat_throttle_interval=timedelta(seconds=1),
        ) as worker:
            yield worker
    finally:
        await close_sessions()
