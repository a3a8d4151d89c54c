"""The rollout: waves in dependency order, steps with bakes and gates, and a saga that
restores every touched service when anything fails.

Deterministic workflow code only: time from `workflow.now()`, every side effect in an
activity. History stays small because one activity bakes a whole service-step (gates are
evaluated inside it), so history grows with service-steps, not with evaluations.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import (
    CancelledError as TemporalCancelledError,
)

with workflow.unsafe.imports_passed_through():
    # Not `from shiprail import visibility`: a submodule fetched as an attribute of the
    # sandbox's fresh `shiprail` package is imported again for every workflow run.
    import shiprail.visibility as visibility
    from shiprail.activities import actuation, locks
    from shiprail.activities import bake as bake_activity
    from shiprail.activities import budget as budget_activity
    from shiprail.activities.types import (
        BakeRequest,
        BakeResult,
        BudgetRequest,
        ExposureOutcome,
        ExposureWaves,
        ReadExposure,
        SetExposure,
    )
    from shiprail.plan.models import RolloutPlan
    from shiprail.plan.resolve import ServiceSettings, plan_waves, resolve_services
    from shiprail.plan.waves import dependents
    from shiprail.plan.windows import next_open, wait_note
    from shiprail.status import (
        AuditEntry,
        Exposure,
        GateStatus,
        Phase,
        RolloutStatus,
        ServiceState,
        ServiceStatus,
        render_details,
    )
    from shiprail.workflows.inputs import ControlRequest, RolloutInput
    from shiprail.workflows.lock import ServiceLockWorkflow

T = TypeVar("T")

_ACTUATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=[actuation.REJECTED],
)
_RESTORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    backoff_coefficient=2.0,
    non_retryable_error_types=[actuation.REJECTED],
)
_BAKE_HEARTBEAT = timedelta(seconds=10)
# How long a rollback's local activity goes on starting waves: it holds the workflow task,
# and with it every status query, until it returns.
_LOCAL_RESTORE_BUDGET = timedelta(seconds=1)
_LOCK_POLL_MAX = timedelta(seconds=60)


class StepFailed(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


def _cause(error: BaseException) -> str:
    while isinstance(error, ActivityError) and error.cause is not None:
        error = error.cause
    return str(error) or type(error).__name__


@workflow.defn(name="Rollout")
class RolloutWorkflow:
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        self._plan = request.plan
        self._id = request.rollout_id
        self._settings = {s.name: s for s in resolve_services(request.plan)}
        self._waves = plan_waves(request.plan)
        self._status = RolloutStatus(
            id=request.rollout_id,
            plan=request.plan.metadata.name,
            phase=Phase.PENDING,
            owner=request.plan.metadata.owner,
            ticket=request.plan.metadata.ticket,
            started_by=request.started_by,
            services=[
                ServiceStatus(name=s.name, version=s.version, wave=s.wave + 1, steps=s.steps)
                for s in self._settings.values()
            ],
        )
        self._svc = {s.name: s for s in self._status.services}
        self._audit: list[AuditEntry] = []
        self._touched: set[str] = set()
        self._actuating: set[str] = set()
        self._rollback: asyncio.Task[None] | None = None
        self._locks: list[workflow.ChildWorkflowHandle[Any, Any]] = []
        self._paused = False
        self._abort: ControlRequest | None = None
        self._approved: set[tuple[str, int]] = set()
        self._awaiting: set[tuple[str, int]] = set()
        self._work: asyncio.Task[None] | None = None
        self._last_phase: Phase | None = None
        self._locked = False
        self._windows = [w for w in (request.plan.spec.windows, request.train_windows) if w is not None]
        self._budget_policies = [
            p for p in (request.plan.spec.budget_policy, request.train_budget_policy) if p is not None
        ]
        self._override = request.window_override

    # ---- run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        self._status.started_at = workflow.now()
        self._log("phase", f"rollout started by {request.started_by}", actor=request.started_by)
        if self._override is not None:
            self._log(
                "human",
                f"started with a window override: {self._override.reason}",
                actor=self._override.actor,
            )
        self._refresh()
        self._work = asyncio.create_task(self._drive(request.wait_for_locks))
        try:
            await self._work
            self._finish(Phase.SUCCEEDED, "every service reached 100%")
        except StepFailed as failure:
            await self._roll_back(failure.service, f"{failure.service}: {failure.reason}")
        except _LockBusy as busy:
            self._finish(Phase.FAILED, str(busy))
        except _Blocked as blocked:
            self._finish(Phase.FAILED, str(blocked))
        except ActivityError as exc:
            await self._roll_back(None, f"an activity failed: {_cause(exc)}")
        except asyncio.CancelledError:
            if self._abort is None:
                # Cancelled from the UI or `temporal workflow cancel`: compensate, then
                # let the cancellation stand so the UI shows it.
                await self._roll_back(None, "workflow cancelled")
                await self._release_locks()
                raise
            await self._roll_back(None, f"aborted by {self._abort.actor}: {self._abort.reason}")
        await self._release_locks()
        return self._status

    async def _drive(self, wait_for_locks: bool) -> None:
        await self._acquire_locks(wait_for_locks)
        await self._check_budget()
        await self._record_exposures()
        slots = asyncio.Semaphore(self._plan.spec.max_parallel or 1_000_000)
        for wave in self._waves:
            groups = [wave] if self._plan.spec.lockstep else [[name] for name in wave]
            await _all_or_cancel([self._roll_group([self._settings[n] for n in g], slots) for g in groups])

    # ---- locks, budget, recorded exposure ---------------------------------------------

    async def _acquire_locks(self, wait: bool) -> None:
        for service in sorted(self._settings):
            delay = timedelta(seconds=1)
            while True:
                try:
                    handle = await workflow.start_child_workflow(
                        ServiceLockWorkflow.run,
                        service,
                        id=locks.lock_workflow_id(service),
                        static_summary=f"lock on {service} held by {self._id}",
                        parent_close_policy=workflow.ParentClosePolicy.TERMINATE,
                    )
                    self._locks.append(handle)
                    break
                except WorkflowAlreadyStartedError:
                    holder = await workflow.execute_activity(
                        locks.lock_holder,
                        service,
                        start_to_close_timeout=timedelta(seconds=30),
                        summary=f"who holds {service}",
                    )
                    if not wait:
                        raise _LockBusy(
                            f"service {service} is locked by rollout {holder or 'unknown'}"
                        ) from None
                    if self._status.lock_holder != holder:
                        self._status.lock_holder = holder
                        self._log("lock", f"waiting for {service}, held by {holder}", service=service)
                        self._refresh()
                    await workflow.sleep(delay)
                    delay = min(delay * 2, _LOCK_POLL_MAX)
        self._status.lock_holder = None
        self._locked = True
        self._log("lock", f"locked {', '.join(sorted(self._settings))}")
        self._refresh()

    async def _release_locks(self) -> None:
        for handle in self._locks:
            await handle.signal(ServiceLockWorkflow.release)
        for handle in self._locks:
            await handle
        self._locks = []

    async def _check_budget(self) -> None:
        for policy in self._budget_policies:
            result = await workflow.execute_activity(
                budget_activity.check_budget,
                BudgetRequest(services=list(self._settings), policy=policy, prometheus_url=self._prom_url()),
                start_to_close_timeout=timedelta(minutes=2),
                summary="error budget check",
            )
            for service, verdict in result.verdicts.items():
                self._log(
                    "gate",
                    f"budget_policy: {verdict.status.value}: {verdict.reason}",
                    service=service,
                    data=verdict.model_dump(mode="json"),
                )
            if not result.passed:
                blocked = [f"{s}: {v.reason}" for s, v in result.verdicts.items() if v.status.value != "pass"]
                raise _Blocked("blocked by budget_policy: " + "; ".join(blocked))

    async def _record_exposures(self) -> None:
        async def read(s: ServiceSettings) -> None:
            exposure = await workflow.execute_activity(
                actuation.read_exposure,
                ReadExposure(service=s.name, actuator=s.actuator),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_ACTUATE_RETRY,
                summary=f"read {s.name} exposure",
            )
            self._svc[s.name].original = exposure
            self._log(
                "info",
                f"recorded exposure of {s.name}: stable {exposure.stable_version},"
                f" canary {exposure.canary_version} at {exposure.weight:g}%",
                service=s.name,
                data=exposure.model_dump(),
            )

        try:
            await _all_or_cancel([read(s) for s in self._settings.values()])
        except ActivityError as exc:
            raise _Blocked(f"cannot read the current exposure: {_cause(exc)}") from None
        self._refresh()

    # ---- one group of services moving together (one service, or a lockstep wave) ------

    async def _roll_group(self, group: Sequence[ServiceSettings], slots: asyncio.Semaphore) -> None:
        lockstep = len(group) > 1
        if not lockstep:
            await slots.acquire()
        try:
            for index in range(len(group[0].steps)):
                _stop_if_cancelled()
                await self._before_step(group, index)
                if lockstep:
                    await _all_or_cancel([self._bounded(slots, self._actuate(s, index)) for s in group])
                else:
                    await self._actuate(group[0], index)
                await _all_or_cancel([self._bake(s, index) for s in group])
                if self._paused:
                    await self._hold(group, index)
            for s in group:
                self._set_state(s.name, ServiceState.DONE, note="")
        finally:
            if not lockstep:
                slots.release()

    async def _bounded(self, slots: asyncio.Semaphore, work: Awaitable[T]) -> T:
        async with slots:
            return await work

    async def _before_step(self, group: Sequence[ServiceSettings], index: int) -> None:
        # Approval first: a human's yes should not expire while a window is closed.
        needed = [s for s in group if self._needs_approval(s, index)]
        if needed:
            keys = {(s.name, index) for s in needed}
            self._awaiting |= keys
            for s in needed:
                self._set_state(s.name, ServiceState.AWAITING_APPROVAL, note=f"before {s.steps[index]:g}%")
            await workflow.wait_condition(lambda: keys <= self._approved)
            self._awaiting -= keys
        await self._wait_for_window(group)
        if self._paused:
            for s in group:
                self._set_state(s.name, ServiceState.HOLDING, note="paused")
            await workflow.wait_condition(lambda: not self._paused)

    def _needs_approval(self, s: ServiceSettings, index: int) -> bool:
        return (s.approval == "before_first_step" and index == 0) or (
            s.approval == "before_full" and s.steps[index] >= 100
        )

    async def _wait_for_window(self, group: Sequence[ServiceSettings]) -> None:
        """Hold the next step until every deploy window (the plan's, and the train's for a
        car) is open, or a human overrides them. Asked at every step start."""
        while self._windows and self._override is None:
            now = workflow.now()
            # The holidays package loads each country's module on first use.
            with workflow.unsafe.imports_passed_through():
                opens = next_open(now, self._windows)
                note = wait_note(now, opens, self._windows) if opens is not None and opens != now else ""
            if opens == now:
                return
            if opens is None:
                raise self._step_failed(group[0].name, "no deploy window opens in the next 400 days")
            for s in group:
                self._set_state(s.name, ServiceState.WAITING_WINDOW, note=note)
            # Patched: rollouts recorded before overrides existed slept through the window.
            if not workflow.patched("window-override"):
                await workflow.sleep(opens - now)
                continue
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._override is not None, timeout=opens - now)

    async def _actuate(self, s: ServiceSettings, index: int) -> None:
        if self._rollback is not None:
            # A step failed and its rollback has started: a change now could overtake it.
            raise asyncio.CancelledError()
        weight = s.steps[index]
        status = self._svc[s.name]
        status.step, status.gates = index + 1, []
        self._set_state(s.name, ServiceState.ACTUATING, note=f"→ {weight:g}%")
        self._touched.add(s.name)  # before the call: a lost answer may still have applied it
        self._actuating.add(s.name)
        try:
            await workflow.execute_activity(
                actuation.set_exposure,
                SetExposure(
                    service=s.name,
                    actuator=s.actuator,
                    version=s.version,
                    weight=weight,
                    rollout_id=self._id,
                    idempotency_key=f"{self._id}/{s.name}/step-{index + 1}",
                ),
                start_to_close_timeout=s.actuator.timeout + timedelta(seconds=5),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=_ACTUATE_RETRY,
                # A change in flight must land (or fail) before compensation starts, or the
                # restore could be overtaken by it.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"{s.name} → {weight:g}%",
            )
        except ActivityError as exc:
            raise self._step_failed(s.name, f"actuation to {weight:g}% failed: {_cause(exc)}") from None
        finally:
            self._actuating.discard(s.name)
        status.weight = weight
        self._log(
            "actuation",
            f"{s.name} → {weight:g}% ({s.version})",
            service=s.name,
            data={"weight": weight, "version": s.version, "step": index + 1},
        )
        _stop_if_cancelled()

    def _bake_request(self, s: ServiceSettings, bake: timedelta | None) -> BakeRequest:
        original = self._svc[s.name].original
        stable = (original.stable_version if original else None) or ""
        prometheus = self._plan.spec.prometheus
        return BakeRequest(
            rollout_id=self._id,
            service=s.name,
            version=s.version,
            stable_version=stable,
            weight=self._svc[s.name].weight,
            step_start=workflow.now(),
            bake=bake,
            interval=s.interval,
            gates={name: self._plan.spec.gates[name] for name in s.gates},
            prometheus_url=self._prom_url(),
            prometheus_timeout=prometheus.timeout if prometheus else None,
        )

    async def _bake(self, s: ServiceSettings, index: int) -> None:
        self._set_state(s.name, ServiceState.BAKING, note="")
        weight = s.steps[index]
        try:
            result = await workflow.execute_activity(
                bake_activity.bake,
                self._bake_request(s, s.bake),
                start_to_close_timeout=s.bake * 3 + timedelta(minutes=10),
                heartbeat_timeout=_BAKE_HEARTBEAT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                summary=f"bake {s.name}@{weight:g}% ({', '.join(s.gates) or 'no gates'})",
            )
        except ActivityError as exc:
            raise self._step_failed(s.name, f"bake at {weight:g}% failed: {_cause(exc)}") from None
        self._record_verdicts(s.name, weight, result)
        if not result.passed:
            raise self._step_failed(s.name, f"gate failed at {weight:g}%: {result.reason}")

    async def _hold(self, group: Sequence[ServiceSettings], index: int) -> None:
        """Paused after a bake: keep evaluating gates (a failure still rolls back) until resumed."""
        for s in group:
            self._set_state(s.name, ServiceState.HOLDING, note=f"paused at {s.steps[index]:g}%")
        holds = [
            workflow.start_activity(
                bake_activity.bake,
                self._bake_request(s, None),
                start_to_close_timeout=timedelta(days=30),
                heartbeat_timeout=_BAKE_HEARTBEAT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                summary=f"hold {s.name}@{s.steps[index]:g}% (paused)",
            )
            for s in group
        ]
        resumed = asyncio.ensure_future(workflow.wait_condition(lambda: not self._paused))
        tasks: list[asyncio.Future[Any]] = [resumed, *holds]
        try:
            done, _ = await workflow.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(tasks)
            raise
        await _cancel(tasks)
        for s, hold in zip(group, holds, strict=True):
            if hold not in done or hold.cancelled():
                continue
            try:
                result = hold.result()
            except ActivityError as exc:
                raise self._step_failed(
                    s.name, f"gate evaluation while paused failed: {_cause(exc)}"
                ) from None
            self._record_verdicts(s.name, s.steps[index], result)
            raise self._step_failed(
                s.name, f"gate failed while paused at {s.steps[index]:g}%: {result.reason}"
            )

    def _record_verdicts(self, service: str, weight: float, result: BakeResult) -> None:
        self._svc[service].gates = [
            GateStatus(
                name=g.verdict.gate,
                status="fail" if g.failed else g.verdict.status.value,
                value=g.verdict.value,
                threshold=g.verdict.threshold,
                reason=g.verdict.reason,
            )
            for g in result.gates
        ]
        for g in result.gates:
            self._log(
                "gate",
                f"{g.verdict.gate} on {service}@{weight:g}%: "
                f"{'fail' if g.failed else g.verdict.status.value}: {g.verdict.reason} ({g.evaluations})",
                service=service,
                data=g.verdict.model_dump(mode="json"),
            )
        self._refresh()

    # ---- compensation --------------------------------------------------------------

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
        if self._rollback is None and not _called_off() and workflow.patched("roll-back-at-the-failure"):
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
            name, ServiceState.RESTORE_FAILED, note=error if isinstance(error, str) else _cause(error)
        )

    # ---- human control (updates) -----------------------------------------------------

    def _refuse_unless_active(self, verb: str) -> None:
        if self._status.phase.terminal:
            raise ApplicationError(f"rollout is {self._status.phase.value}; cannot {verb}")
        if self._status.phase is Phase.ROLLING_BACK or self._abort is not None:
            raise ApplicationError(f"rollout is rolling back; cannot {verb}")

    @workflow.update
    def pause(self, request: ControlRequest) -> str:
        self._paused = True
        self._log("human", f"paused: {request.reason}", actor=request.actor)
        self._status.paused_by = request.actor
        self._refresh()
        return "paused: weights hold after the current bake; gates keep being evaluated"

    @pause.validator
    def _validate_pause(self, request: ControlRequest) -> None:
        self._refuse_unless_active("pause")
        if self._paused:
            raise ApplicationError(f"rollout is already paused (by {self._status.paused_by})")

    @workflow.update
    def resume(self, request: ControlRequest) -> str:
        self._paused = False
        self._status.paused_by = None
        self._log("human", f"resumed{': ' + request.reason if request.reason else ''}", actor=request.actor)
        self._refresh()
        return "resumed"

    @resume.validator
    def _validate_resume(self, request: ControlRequest) -> None:
        self._refuse_unless_active("resume")
        if not self._paused:
            raise ApplicationError("rollout is not paused; nothing to resume")

    @workflow.update
    def approve(self, request: ControlRequest) -> str:
        keys = {k for k in self._awaiting if request.service in (None, k[0])}
        self._approved |= keys
        names = ", ".join(sorted(f"{name} step {index + 1}" for name, index in keys))
        self._log(
            "human",
            f"approved {names}{': ' + request.reason if request.reason else ''}",
            actor=request.actor,
            service=request.service,
        )
        self._refresh()
        return f"approved {names}"

    @approve.validator
    def _validate_approve(self, request: ControlRequest) -> None:
        self._refuse_unless_active("approve")
        if request.service is not None and request.service not in self._settings:
            raise ApplicationError(f"service {request.service!r} is not in this rollout")
        if not any(request.service in (None, name) for name, _ in self._awaiting):
            what = f"service {request.service}" if request.service else "no service"
            raise ApplicationError(f"{what} is awaiting approval right now")

    @workflow.update
    def abort(self, request: ControlRequest) -> str:
        self._abort = request
        self._log("human", f"abort: {request.reason}", actor=request.actor)
        if self._work is not None:
            self._work.cancel()
        touched = ", ".join(sorted(self._touched)) or "nothing touched yet"
        return f"aborting; rolling back: {touched}"

    @abort.validator
    def _validate_abort(self, request: ControlRequest) -> None:
        self._refuse_unless_active("abort")

    @workflow.update
    def override(self, request: ControlRequest) -> str:
        self._override = request
        self._log("human", f"window override: {request.reason}", actor=request.actor)
        waiting = [s.name for s in self._status.services if s.state is ServiceState.WAITING_WINDOW]
        self._refresh()
        going = f"; {', '.join(waiting)} go on now" if waiting else ""
        return f"deploy windows overridden for the rest of this rollout{going}"

    @override.validator
    def _validate_override(self, request: ControlRequest) -> None:
        self._refuse_unless_active("override")
        if not self._windows:
            raise ApplicationError("this rollout has no deploy windows; nothing to override")
        if self._override is not None:
            raise ApplicationError(f"deploy windows are already overridden (by {self._override.actor})")
        if not request.reason:
            raise ApplicationError("an override needs a reason: it is recorded in the audit log")

    # ---- queries ---------------------------------------------------------------------

    @workflow.query
    def status(self) -> RolloutStatus:
        return self._status

    @workflow.query
    def audit(self) -> list[AuditEntry]:
        return self._audit

    # ---- bookkeeping -------------------------------------------------------------------

    def _prom_url(self) -> str | None:
        return self._plan.spec.prometheus.url if self._plan.spec.prometheus else None

    def _log(
        self,
        kind: str,
        message: str,
        *,
        service: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self._audit.append(
            AuditEntry(
                time=workflow.now(), kind=kind, message=message, service=service, actor=actor, data=data or {}
            )
        )

    def _set_state(
        self, service: str, state: ServiceState, *, note: str | None = None, refresh: bool = True
    ) -> None:
        self._svc[service].state = state
        if note is not None:
            self._svc[service].note = note
        if refresh:
            self._refresh()

    def _set_phase(self, phase: Phase) -> None:
        self._status.phase = phase
        self._refresh()

    def _finish(self, phase: Phase, reason: str) -> None:
        self._status.reason = reason
        self._status.ended_at = workflow.now()
        for s in self._status.services:
            if s.name not in self._touched and s.state is ServiceState.WAITING:
                s.state = ServiceState.UNTOUCHED
        self._set_phase(phase)
        self._log("phase", f"{phase.value}: {reason}")
        workflow.upsert_memo({"final": self._status.model_dump(mode="json")})

    def _live_phase(self) -> Phase:
        if self._status.phase.terminal or self._status.phase is Phase.ROLLING_BACK:
            return self._status.phase
        if not self._locked:
            return Phase.PENDING
        states = {s.state for s in self._status.services}
        if self._paused:
            return Phase.PAUSED
        if ServiceState.AWAITING_APPROVAL in states:
            return Phase.AWAITING_APPROVAL
        if ServiceState.WAITING_WINDOW in states:
            return Phase.WAITING_WINDOW
        return Phase.RUNNING

    def _refresh(self) -> None:
        self._status.phase = self._live_phase()
        if self._status.phase != self._last_phase:
            if self._last_phase is not None:
                self._log("phase", f"phase {self._status.phase.value}")
            self._last_phase = self._status.phase
            workflow.upsert_search_attributes([visibility.PHASE.value_set(self._status.phase.value)])
        workflow.set_current_details(render_details(self._status))


class _LockBusy(Exception):
    pass


class _Blocked(Exception):
    pass


def _stop_if_cancelled() -> None:
    """Honour a cancellation the awaited activity absorbed.

    An actuation waits for its activity to settle when cancelled (a change in flight must
    land before compensation), and an activity that completes anyway hands its result back
    as if nothing happened. Without this check a sibling of a failed service would go on
    to its next step while the rollout is already failing.
    """
    # Patched: histories recorded before this check replay as they ran.
    if _called_off() and workflow.patched("honour-absorbed-cancellation"):
        raise asyncio.CancelledError()


def _called_off() -> bool:
    """Whether the running task has been cancelled, even if what it awaited absorbed it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _change(request: SetExposure) -> str:
    return f"{request.service} → {request.weight:g}% ({request.version})"


def _unapplied(requests: Sequence[SetExposure], exc: FailureError) -> list[ExposureOutcome]:
    """Outcomes when the local activity itself failed: cancelled, nothing is retried;
    otherwise (a timeout, a worker-side error, which arrive unwrapped) all of them are."""
    cancelled = isinstance(exc, TemporalCancelledError)
    return [ExposureOutcome(service=r.service, error=_cause(exc), rejected=cancelled) for r in requests]


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


async def _cancel(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _all_or_cancel(work: Sequence[Awaitable[T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest, wait for them, re-raise it."""
    tasks = [asyncio.ensure_future(w) for w in work]
    if not tasks:
        return []
    try:
        await workflow.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await _cancel(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        await _cancel(tasks)
        error = failed.exception()
        assert error is not None
        raise error
    return [t.result() for t in tasks]


def start_search_attributes(plan: RolloutPlan, *, train: str | None = None) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(visibility.PLAN, plan.metadata.name),
        SearchAttributePair(visibility.PHASE, Phase.PENDING.value),
        SearchAttributePair(visibility.SERVICES, [s.name for s in plan.spec.services]),
    ]
    if train is not None:
        pairs.append(SearchAttributePair(visibility.TRAIN, train))
    return TypedSearchAttributes(pairs)
