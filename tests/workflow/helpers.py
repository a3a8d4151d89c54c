"""Building plans around the test actuator, starting rollouts, polling with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle

from shiprail.client import TASK_QUEUE
from shiprail.plan import RolloutPlan, parse_plan
from shiprail.status import RolloutStatus
from shiprail.workflows.inputs import ControlRequest, RolloutInput
from shiprail.workflows.rollout import RolloutWorkflow, start_search_attributes
from tests.helpers import plan_document

# A PromQL expression whose value is the current weight: real Prometheus evaluates it, so a
# gate can be made to fail at a chosen step without any traffic.
WEIGHT_GATE = {"type": "threshold", "query": "vector({{weight}})", "max": 20, "inconclusive_limit": 0}


def make_plan(url: str, services: list[dict[str, Any]], **spec: Any) -> RolloutPlan:
    spec.setdefault("defaults", {"steps": [10, 50, 100], "bake": "1s", "interval": "1s"})
    return parse_plan(yaml.safe_dump(plan_document(url, services, **spec)))


async def start(
    client: Client,
    plan: RolloutPlan,
    rollout_id: str,
    *,
    task_queue: str = TASK_QUEUE,
    wait_for_locks: bool = True,
) -> WorkflowHandle[Any, RolloutStatus]:
    return await client.start_workflow(
        RolloutWorkflow.run,
        RolloutInput(plan=plan, rollout_id=rollout_id, started_by="tester", wait_for_locks=wait_for_locks),
        id=rollout_id,
        task_queue=task_queue,
        search_attributes=start_search_attributes(plan),
    )


async def status_of(handle: WorkflowHandle[Any, Any]) -> RolloutStatus:
    result: RolloutStatus = await handle.query(RolloutWorkflow.status)
    return result


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def wait_status(
    handle: WorkflowHandle[Any, Any],
    predicate: Callable[[RolloutStatus], bool],
    timeout: float = 30.0,
    what: str = "status",
) -> RolloutStatus:
    seen: list[RolloutStatus] = []

    async def check() -> bool:
        seen.append(await status_of(handle))
        return predicate(seen[-1])

    try:
        await eventually(check, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status: {seen[-1].public() if seen else None}") from None
    return seen[-1]


async def finished(handle: WorkflowHandle[Any, Any], timeout: float = 180.0) -> RolloutStatus:
    """The rollout's result, or a failure showing where it stood when time ran out."""
    try:
        result: RolloutStatus = await asyncio.wait_for(handle.result(), timeout)
        return result
    except TimeoutError:
        stuck = await status_of(handle)
        raise AssertionError(
            f"rollout still {stuck.phase.value} after {timeout}s: {stuck.public()}"
        ) from None


def control(**kwargs: Any) -> ControlRequest:
    return ControlRequest(actor="tester", **kwargs)


async def refused(handle: WorkflowHandle[Any, Any], update: Any, request: ControlRequest) -> str:
    """Send an update that must be refused; return the refusal message."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError

    try:
        await handle.execute_update(update, request)
    except WorkflowUpdateFailedError as exc:
        return str(getattr(exc.cause, "message", exc.cause))
    except RPCError as exc:  # the workflow has ended: the server refuses before any validator
        return exc.message
    raise AssertionError("the update was accepted")
