"""Who holds a service lock, and waiting for it to be free."""

from __future__ import annotations

import asyncio
import contextlib
import time

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

# A waiter long-polls the lock's result for this long between heartbeats, and gives the
# workflow its turn again after `_WAIT_MAX` so the status line can name a new holder.
_POLL = 10.0
_WAIT_MAX = 300.0


def lock_workflow_id(service: str) -> str:
    return f"shiprail-lock-{service}"


@activity.defn
async def lock_holder(service: str) -> str | None:
    try:
        description = await activity.client().get_workflow_handle(lock_workflow_id(service)).describe()
    except RPCError:
        return None
    if description.status is None or description.close_time is not None:
        return None
    return description.parent_id


@activity.defn
async def await_release(service: str) -> None:
    """Return as soon as the lock on `service` is free (or after `_WAIT_MAX`).

    A waiter that polled with back-off noticed a release up to a minute late, and a queue of
    rollouts on one service paid that at every hand-over. Long-polling the lock workflow's
    result hears the release within a second. A lock whose holder has closed without ending
    it (the server applies the holder's TERMINATE parent-close policy asynchronously, and a
    server restart can delay it) is ended here, since no rollout stands behind it.
    """
    client = activity.client()
    handle = client.get_workflow_handle(lock_workflow_id(service))
    deadline = time.monotonic() + _WAIT_MAX
    while time.monotonic() < deadline:
        activity.heartbeat()
        try:
            description = await handle.describe()
        except RPCError:
            return
        if description.status is not WorkflowExecutionStatus.RUNNING:
            return
        if description.parent_id and await _closed(description.parent_id, description.parent_run_id):
            activity.logger.warning(
                "ending the lock on %s: its holder %s has closed", service, description.parent_id
            )
            with contextlib.suppress(RPCError):
                await handle.terminate(reason=f"holder {description.parent_id} has closed")
            return
        this_run = client.get_workflow_handle(handle.id, run_id=description.run_id)
        try:
            await asyncio.wait_for(this_run.result(follow_runs=False), _POLL)
            return
        except TimeoutError:
            continue
        except (WorkflowFailureError, RPCError):
            return


async def _closed(workflow_id: str, run_id: str | None) -> bool:
    try:
        described = await activity.client().get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError:
        return False
    return described.status is not None and described.status is not WorkflowExecutionStatus.RUNNING
