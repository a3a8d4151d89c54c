"""The one place that registers every workflow and activity on task queue `shiprail`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

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
    locks.await_release,
    trains.claim_cars,
    notify.notify,
    propagation.await_served,
]


class ExpectedCancellation(logging.Filter):
    """The SDK logs an activity that ends cancelled as "Completing activity as failed" with
    a full traceback. When a rollback or an abort calls off a bake, that is the plan working,
    not a failure: one line says so, and tracebacks stay for real failures."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, asyncio.CancelledError | TemporalCancelledError):
            message = record.getMessage().replace("Completing activity as failed", "Activity called off")
            record.msg, record.args = f"{message} (a rollback or an abort stopped it)", ()
            record.exc_info, record.exc_text = None, None
        return True


_EXPECTED_CANCELLATION = ExpectedCancellation()


# `cryptography` verifies signed control requests inside update validators. Its Rust core
# may be initialised once a process; the sandbox would import it afresh and abort, so it is
# passed through (it is deterministic: signatures verify the same on every replay).
# `holidays` is imported on first use (`shiprail.plan.holidays`), which may be inside a
# workflow: passed through, it is the module the process already holds, not a fresh copy
# imported again for every workflow run. Its calendars are data, the same on every replay.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("cryptography", "holidays")
)


@asynccontextmanager
async def running_worker(
    client: Client, *, task_queue: str = TASK_QUEUE, max_concurrent_activities: int = 1000
) -> AsyncIterator[Worker]:
    """A worker polling until the block ends; then, once its activities are done, the
    actuators' pooled connections are closed."""
    logging.getLogger("temporalio.activity").addFilter(_EXPECTED_CANCELLATION)  # once: filters are a set
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            workflow_runner=WORKFLOW_RUNNER,
            activities=ACTIVITIES,
            max_concurrent_activities=max_concurrent_activities,
            # Baking activities learn of a cancellation (a sibling failed, a human aborted) at
            # their next heartbeat; throttled to at most this, so rollbacks start promptly.
            max_heartbeat_throttle_interval=timedelta(seconds=1),
        ) as worker:
            yield worker
    finally:
        await close_sessions()
