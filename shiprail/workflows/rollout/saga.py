"""Compensation: when a step fails, the rollout is aborted or cancelled, every touched
service in scope goes back to the exposure recorded before the rollout, consumers first,
a wave at a time; restores cannot be cancelled and are retried until `rollback.timeout`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.exceptions import CancelledError as TemporalCancelledError

with workflow.unsafe.imports_passed_through():
    from shiprail.activities import actuation
    from shiprail.activities.types import ExposureOutcome, ExposureWaves, SetExposure
    from shiprail.plan.waves import dependents
    from shiprail.status import Exposure, Phase, ServiceState
    from shiprail.workflows.rollout.state import RolloutState
    from shiprail.workflows.rollout.tasks import StepFailed, called_off, cause_of

_RESTORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    backoff_coefficient=2.0,
    non_retryable_error_types=[actuation.REJECTED],
)
# How long a rollback's local activity goes on starting waves: it holds the workflow task,
# and with it every status query, until it returns.
_LOCAL_RESTORE_BUDGET = timedelta(seconds=1)


class Saga(RolloutState):
    def _step_failed(self, service: str, reason: str) -> StepFailed:
        """The error to raise for a failed step, with its rollback already started.

        Starting it here, in the activation that saw the failure, rather than once the
        other services' steps have been called off saves an activation: the cancelled
        activities are reported back in the next one, which in `bench.orchestrator` is 2-4 ms
        of a 60 ms rollback in which the bad version goes on serving. What keeps the early
        start safe: no step starts a change once this is set (`_actuate`), and the rollback
        waits for the changes already in flight.
        """
        failure = StepFailed(service, reason)
        # A step of a rollout being aborted or cancelled fails as it is called off; the
        # abort or cancellation rolls back, under its own reason.
        # Patched: histories recorded before rollbacks started here replay as they ran.
        if self._rollback is None and not called_off() and workflow.patched("roll-back-at-the-failure"):
            self._rollback = asyncio.create_task(self._roll_back_after_changes_land(failure))
        return failure

    async def _roll_back_after_changes_land(self, failure: StepFailed) -> None:
        # A change in flight may still apply: it must land (or fail) before its restore.
        if self._actuating:
            await workflow.wait_condition(lambda: not self._actuating)
        await self._compensate(failure.service, f"{failure.service}: {failure.reason}")

    async def _roll_back(self, failing: str | None, reason: str) -> None:
        """Compensate, or see through the rollback a failed step already started."""
        if self._rollback is not None:
            await self._rollback
        else:
            await self._compensate(failing, reason)

    async def _compensate(self, failing: str | None, reason: str) -> None:
        self._status.reason = reason
        if failing:
            self._set_state(failing, ServiceState.FAILED, note="")
        scope = set(self._touched)
        if failing and self._plan.spec.rollback.scope == "dependents":
            graph = {name: s.depends_on for name, s in self._settings.items()}
            scope &= dependents(graph, failing)
        if not scope:
            self._finish(
                Phase.FAILED if not self._touched else Phase.ROLLED_BACK,
                f"{reason}; nothing was changed" if not self._touched else reason,
            )
            return
        self._set_phase(Phase.ROLLING_BACK)
        self._log("phase", f"rolling back {', '.join(sorted(scope))}: {reason}")
        self._notify("rollback", f"rolling back {', '.join(sorted(scope))}: {reason}", services=sorted(scope))
        waves = [members for wave in reversed(self._waves) if (members := [n for n in wave if n in scope])]
        # Patched: rollbacks recorded before waves ran back to back replay as they ran.
        if workflow.patched("restore-waves-back-to-back"):
            await self._restore_waves(waves)
        else:
            for members in waves:
                await self._restore_one_wave(members)
        left = [n for n in self._touched - scope if self._svc[n].state is not ServiceState.DONE]
        for name in left:
            self._svc[name].note = f"left at {self._svc[name].weight:g}% (outside rollback scope)"
        if self._status.unrestored:
            self._finish(
                Phase.ROLLBACK_FAILED, f"{reason}; NOT restored: {', '.join(self._status.unrestored)}"
            )
        else:
            self._finish(Phase.ROLLED_BACK, reason)

    async def _restore_waves(self, waves: list[list[str]]) -> None:
        """Restore wave after wave, consumers first: one attempt for each service in the
        worker, then a durable, retried activity for each one whose attempt failed but may
        succeed, before any later wave starts.

        A rollback is when seconds matter. A local activity runs in this worker inside the
        current workflow task, so it costs the actuator's latency, not a server round trip
        per activity and per workflow task; one activity walking the waves back to back
        saves a dispatch per service and an activation per wave on top. But it holds the
        workflow task, and with it every status query and the UI's view, until it returns:
        once `_LOCAL_RESTORE_BUDGET` has passed it starts no further wave, and the waves
        left go through ordinary activities, which show in the UI as they run. Anything but
        a refusal is retried until `rollback.timeout`, with every attempt visible in the UI.
        """
        while waves:
            requests = [[self._restore_request(name) for name in wave] for wave in waves]
            # One render of the details for all of them: 50 renders of a 50-service table
            # would cost milliseconds before the first restore.
            for request in (r for wave in requests for r in wave):
                note = f"→ {request.weight:g}%"
                self._set_state(request.service, ServiceState.ROLLING_BACK, note=note, refresh=False)
            self._refresh()
            names = [name for wave in waves for name in wave]
            try:
                applied = await workflow.execute_local_activity(
                    actuation.set_exposure_waves,
                    ExposureWaves(waves=requests, budget=_LOCAL_RESTORE_BUDGET),
                    start_to_close_timeout=_LOCAL_RESTORE_BUDGET + max(map(self._restore_timeout, names)),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    summary="restore " + "; then ".join(", ".join(map(_change, wave)) for wave in requests),
                )
            except FailureError as exc:
                # Which waves it reached is unknown: the first is retried, then the rest go on.
                applied = [_unapplied(requests[0], exc)]
            for wave_requests, outcomes in zip(requests, applied, strict=False):
                await self._settle_wave(wave_requests, outcomes)
            if len(applied) < len(waves) and all(o.error is None for o in applied[-1]):
                # Stopped by the budget: the actuator is slow, and the rest must show.
                for wave_requests in requests[len(applied) :]:
                    await self._restore_all_durably(wave_requests)
                return
            waves = waves[len(applied) :]

    async def _restore_one_wave(self, members: Sequence[str]) -> None:
        """One wave as rollbacks recorded before `restore-waves-back-to-back` ran it."""
        # Patched: rollbacks recorded before waves were restored together replay as they ran.
        if not workflow.patched("restore-waves-together"):
            results = await asyncio.gather(*(self._restore(name) for name in members), return_exceptions=True)
            for name, outcome in zip(members, results, strict=True):
                if isinstance(outcome, BaseException):
                    self._restore_failed(name, outcome)
            return
        requests = [self._restore_request(name) for name in members]
        for request in requests:
            self._set_state(request.service, ServiceState.ROLLING_BACK, note=f"→ {request.weight:g}%")
        try:
            outcomes = await workflow.execute_local_activity(
                actuation.set_exposures,
                requests,
                start_to_close_timeout=max(self._restore_timeout(n) for n in members),
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary="restore " + ", ".join(_change(r) for r in requests),
            )
        except FailureError as exc:
            outcomes = _unapplied(requests, exc)
        await self._settle_wave(requests, outcomes)

    async def _settle_wave(
        self, requests: Sequence[SetExposure], outcomes: Sequence[ExposureOutcome]
    ) -> None:
        errors = {o.service: o for o in outcomes if o.error is not None}
        retried = []
        for request in requests:
            error = errors.get(request.service)
            if error is None:
                self._restored(request)
            elif error.rejected:
                self._restore_failed(request.service, str(error.error))
            else:
                retried.append(request)
                note = f"→ {request.weight:g}%, retrying: {error.error}"
                self._set_state(request.service, ServiceState.ROLLING_BACK, note=note)
        await self._restore_all_durably(retried)

    async def _restore_all_durably(self, requests: Sequence[SetExposure]) -> None:
        results = await asyncio.gather(*(self._restore_durably(r) for r in requests), return_exceptions=True)
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, BaseException):
                self._restore_failed(request.service, result)
            else:
                self._restored(request)

    async def _restore(self, name: str) -> None:
        """One service's restore as rollbacks recorded before `restore-waves-together` ran it."""
        request = self._restore_request(name)
        self._set_state(name, ServiceState.ROLLING_BACK, note=f"→ {request.weight:g}%")
        # Patched: rollbacks recorded before the local first attempt replay as they ran.
        if not workflow.patched("restore-locally-first") or not await _restore_locally(
            request, self._restore_timeout(name)
        ):
            await self._restore_durably(request)
        self._restored(request)

    def _restore_request(self, name: str) -> SetExposure:
        s, original = self._settings[name], self._svc[name].original or Exposure(service=name)
        return SetExposure(
            service=name,
            actuator=s.actuator,
            version=original.canary_version or original.stable_version or s.version,
            weight=original.weight,
            rollout_id=self._id,
            idempotency_key=f"{self._id}/{name}/restore",
            original=original,
        )

    def _restore_timeout(self, name: str) -> timedelta:
        return self._settings[name].actuator.timeout + timedelta(seconds=5)

    async def _restore_durably(self, request: SetExposure) -> None:
        await workflow.execute_activity(
            actuation.set_exposure,
            request,
            start_to_close_timeout=self._restore_timeout(request.service),
            schedule_to_close_timeout=self._plan.spec.rollback.timeout,
            retry_policy=_RESTORE_RETRY,
            summary=_restore_summary(request),
        )

    def _restored(self, request: SetExposure) -> None:
        name, status = request.service, self._svc[request.service]
        original = status.original or Exposure(service=name)
        status.weight = original.weight if original.canary_version == self._settings[name].version else 0.0
        self._set_state(name, ServiceState.RESTORED, note=f"{request.weight:g}% {request.version}")
        self._log(
            "restore",
            f"{name} restored to {request.weight:g}% ({request.version})",
            service=name,
            data=original.model_dump(),
        )

    def _restore_failed(self, name: str, error: BaseException | str) -> None:
        self._status.unrestored.append(name)
        self._set_state(
            name, ServiceState.RESTORE_FAILED, note=error if isinstance(error, str) else cause_of(error)
        )


def _change(request: SetExposure) -> str:
    return f"{request.service} → {request.weight:g}% ({request.version})"


def _unapplied(requests: Sequence[SetExposure], exc: FailureError) -> list[ExposureOutcome]:
    """Outcomes when the local activity itself failed: cancelled, nothing is retried;
    otherwise (a timeout, a worker-side error, which arrive unwrapped) all of them are."""
    cancelled = isinstance(exc, TemporalCancelledError)
    return [ExposureOutcome(service=r.service, error=cause_of(exc), rejected=cancelled) for r in requests]


def _restore_summary(request: SetExposure) -> str:
    return f"restore {_change(request)}"


async def _restore_locally(request: SetExposure, timeout: timedelta) -> bool:
    """One service's local first attempt, as rollbacks before `restore-waves-together` ran it;
    False when it should be retried durably."""
    try:
        await workflow.execute_local_activity(
            actuation.set_exposure,
            request,
            start_to_close_timeout=timeout,
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=_restore_summary(request),
        )
    except FailureError as exc:
        # A local activity's failure arrives unwrapped (no ActivityError around it).
        cause = exc.cause if isinstance(exc, ActivityError) else exc
        if isinstance(exc, TemporalCancelledError) or (
            isinstance(cause, ApplicationError) and cause.non_retryable
        ):
            raise
        return False
    return True
