"""Drift: the exposure of a touched service no longer being what the rollout set.

It is looked for at the end of every bake (by the bake activity, in the same read that
ends it, so it costs no history) and before a step that had to wait (for an approval or a
window), when the world had time to move. A drift never promotes: the rollout holds in
phase `paused` with the service `drifted`, the expected and found exposure go to the audit
log and the notification targets, and `resume` accepts the exposure as found while `abort`
rolls back to the one recorded before the rollout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from shiprail.activities import actuation
    from shiprail.activities.types import ReadExposure
    from shiprail.drift import Drift, detect
    from shiprail.plan.resolve import ServiceSettings
    from shiprail.status import Exposure, ServiceState
    from shiprail.workflows.rollout.state import RolloutState
    from shiprail.workflows.rollout.tasks import StepFailed, cause_of

_READ_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=5)


class DriftWatch(RolloutState):
    def _drifted(self, drift: Drift) -> None:
        self._paused = True
        self._status.paused_by = "drift detection"
        self._drifts[drift.service] = drift
        self._set_state(drift.service, ServiceState.DRIFTED, note=drift.summary)
        self._log(
            "drift",
            f"{drift.service}: {drift.summary}; holding until resume (accept) or abort (roll back)",
            service=drift.service,
            data={"expected_weight": drift.expected_weight, "found": drift.found.model_dump()},
        )
        self._notify("drift", drift.summary, service=drift.service, found=drift.found.model_dump())

    def _expected_weight(self, name: str) -> float:
        if name in self._touched:
            return self._svc[name].weight
        original = self._svc[name].original
        return original.weight if original else 0.0

    async def _look_for_drift(self, group: Sequence[ServiceSettings]) -> None:
        """Read the group's exposure again before a step that had to wait."""
        # Patched: rollouts recorded before drift was looked for here replay as they ran.
        if not workflow.patched("drift-before-waited-step"):
            return

        async def read(s: ServiceSettings) -> Exposure:
            return await workflow.execute_activity(
                actuation.read_exposure,
                ReadExposure(service=s.name, actuator=s.actuator),
                start_to_close_timeout=s.actuator.timeout + timedelta(seconds=5),
                retry_policy=_READ_RETRY,
                summary=f"check {s.name} for drift",
            )

        try:
            found = await asyncio.gather(*(read(s) for s in group))
        except ActivityError as exc:
            raise StepFailed(
                group[0].name, f"cannot re-read the exposure before the next step: {cause_of(exc)}"
            ) from None
        for s, exposure in zip(group, found, strict=True):
            drift = detect(s.name, self._expected_weight(s.name), exposure)
            if drift is not None:
                self._drifted(drift)
