"""A service lock: a child workflow whose id is the lock.

Temporal allows one running workflow per id, so starting `shiprail-lock-<service>` either
takes the lock or fails. The lock is a child of the rollout that holds it with the
TERMINATE parent-close policy: whatever way the rollout ends — success, rollback,
termination from the UI — the server ends the lock with it.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="ServiceLock")
class ServiceLockWorkflow:
    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self, service: str) -> None:
        await workflow.wait_condition(lambda: self._released)

    @workflow.signal
    def release(self) -> None:
        self._released = True
