"""Who holds a service lock (for the `pending` status line)."""

from __future__ import annotations

from temporalio import activity
from temporalio.service import RPCError


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
