"""The rollout: waves in dependency order, steps with bakes and gates, and a saga that
restores every touched service when anything fails.

Deterministic workflow code only: time from `workflow.now()`, every side effect in an
activity. History stays small because one activity bakes a whole service-step (gates are
evaluated inside it), so history grows with service-steps, not with evaluations. The
class is assembled from its concerns: `state` (what it knows and shows), `saga`
(compensation), `control` (human updates and queries); the steps are here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    # Not `from shiprail import visibility`: a submodule fetched as an attribute of the
    # sandbox's fresh `shiprail` package is imported again for every workflow run.
    import shiprail.visibility as visibility
    from shiprail.activities import actuation, locks
    from shiprail.activities import bake as bake_activity
    from shiprail.activities import budget as budget_activity
    from shiprail.activities import propagation as propagation_activity
    from shiprail.activities.propagation import PropagationRequest
    from shiprail.activities.types import BakeRequest, BakeResult, BudgetRequest, ReadExposure, SetExposure
    from shiprail.plan.actuators import FLAG_PLATFORMS
    from shiprail.plan.durations import format_duration
    from shiprail.plan.models import RolloutPlan
    from shiprail.plan.resolve import ServiceSettings
    from shiprail.plan.windows import next_open, wait_note
    from shiprail.status import GateStatus, Phase, RolloutStatus, ServiceState
    from shiprail.workflows.inputs import RolloutInput
    from shiprail.workflows.lock import ServiceLockWorkflow
    from shiprail.workflows.rollout.control import HumanControl
    from shiprail.workflows.rollout.drift import DriftWatch
    from shiprail.workflows.rollout.saga import Saga
    from shiprail.workflows.rollout.tasks import (
        Blocked,
        LockBusy,
        StepFailed,
        all_or_cancel,
        cancel_all,
        cause_of,
        stop_if_cancelled,
    )

T = TypeVar("T")

_ACTUATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=[actuation.REJECTED],
)
_BAKE_HEARTBEAT = timedelta(seconds=10)
_LOCK_POLL_MAX = timedelta(seconds=60)


@workflow.defn(name="Rollout")
class RolloutWorkflow(Saga, HumanControl, DriftWatch):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        super().__init__(request)

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
        except LockBusy as busy:
            self._finish(Phase.FAILED, str(busy))
        except Blocked as blocked:
            self._finish(Phase.FAILED, str(blocked))
        except ActivityError as exc:
            await self._roll_back(None, f"an activity failed: {cause_of(exc)}")
        except asyncio.CancelledError:
            if self._abort is None:
                # Cancelled from the UI or `temporal workflow cancel`: compensate, then
                # let the cancellation stand so the UI shows it.
                await self._roll_back(None, "workflow cancelled")
                await self._release_locks()
                await self._notifications_sent()
                raise
            await self._roll_back(None, f"aborted by {self._abort.actor}: {self._abort.reason}")
        await self._release_locks()
        await self._notifications_sent()
        return self._status

    async def _drive(self, wait_for_locks: bool) -> None:
        await self._acquire_locks(wait_for_locks)
        await self._check_budget()
        await self._record_exposures()
        slots = asyncio.Semaphore(self._plan.spec.max_parallel or 1_000_000)
        for wave in self._waves:
            groups = [wave] if self._plan.spec.lockstep else [[name] for name in wave]
            await all_or_cancel([self._roll_group([self._settings[n] for n in g], slots) for g in groups])

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
                        raise LockBusy(
                            f"service {service} is locked by rollout {holder or 'unknown'}"
                        ) from None
                    if self._status.lock_holder != holder:
                        self._status.lock_holder = holder
                        self._log("lock", f"waiting for {service}, held by {holder}", service=service)
                        self._refresh()
                    if workflow.patched("lock-await-release"):
                        await workflow.execute_activity(
                            locks.await_release,
                            service,
                            start_to_close_timeout=timedelta(minutes=6),
                            heartbeat_timeout=timedelta(seconds=30),
                            summary=f"wait for {service} to be free",
                        )
                    else:
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
                raise Blocked("blocked by budget_policy: " + "; ".join(blocked))

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
            await all_or_cancel([read(s) for s in self._settings.values()])
        except ActivityError as exc:
            raise Blocked(f"cannot read the current exposure: {cause_of(exc)}") from None
        self._refresh()

    # ---- one group of services moving together (one service, or a lockstep wave) ------

    async def _roll_group(self, group: Sequence[ServiceSettings], slots: asyncio.Semaphore) -> None:
        served = [s for s in group if self._already_serving(s)]
        # Patched: rollouts recorded before such services were skipped replay as they ran.
        if served and workflow.patched("skip-services-already-serving"):
            for s in served:
                self._svc[s.name].weight = 100.0
                self._set_state(
                    s.name, ServiceState.DONE, note=f"already serving {s.version} at 100%: skipped"
                )
                self._log("info", f"{s.name} already serves {s.version} at 100%; skipped", service=s.name)
            group = [s for s in group if s not in served]
            if not group:
                return
        lockstep = len(group) > 1
        if not lockstep:
            await slots.acquire()
        try:
            for index in range(len(group[0].steps)):
                stop_if_cancelled()
                await self._before_step(group, index)
                if lockstep:
                    await all_or_cancel([self._bounded(slots, self._actuate(s, index)) for s in group])
                else:
                    await self._actuate(group[0], index)
                await all_or_cancel([self._bake(s, index) for s in group])
                if self._paused:
                    await self._hold(group, index)
            for s in group:
                self._set_state(s.name, ServiceState.DONE, note="")
        finally:
            if not lockstep:
                slots.release()

    def _already_serving(self, s: ServiceSettings) -> bool:
        """Whether the exposure read before the rollout already serves this version to
        everyone: taking it back down to the first step would be a rollout backwards."""
        original = self._svc[s.name].original
        if original is None:
            return False
        canary_full = original.canary_version == s.version and original.weight >= 100
        stable_only = original.stable_version == s.version and (
            original.canary_version is None or original.weight <= 0
        )
        return canary_full or stable_only

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
            # No longer awaiting: the phase must not say so while drift is looked for.
            # Patched with that look: it changes the phase, whose search attribute is a command.
            if workflow.patched("drift-before-waited-step"):
                for s in needed:
                    self._set_state(s.name, ServiceState.WAITING, note="approved")
        waited = await self._wait_for_window(group) or bool(needed)
        if waited:
            await self._look_for_drift(group)
        if self._paused:
            for s in group:
                if s.name not in self._drifts:
                    self._set_state(s.name, ServiceState.HOLDING, note="paused")
            await workflow.wait_condition(lambda: not self._paused)

    def _needs_approval(self, s: ServiceSettings, index: int) -> bool:
        return (s.approval == "before_first_step" and index == 0) or (
            s.approval == "before_full" and s.steps[index] >= 100
        )

    async def _wait_for_window(self, group: Sequence[ServiceSettings]) -> bool:
        """Hold the next step until every deploy window (the plan's, and the train's for a
        car) is open, or a human overrides them; whether it had to wait. Asked at every step
        start."""
        waited = False
        while self._windows and self._override is None:
            now = workflow.now()
            # The holidays package loads each country's module on first use.
            with workflow.unsafe.imports_passed_through():
                opens = next_open(now, self._windows)
                note = wait_note(now, opens, self._windows) if opens is not None and opens != now else ""
            if opens == now:
                return waited
            waited = True
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
        return waited

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
                self._step_change(s, index),
                start_to_close_timeout=s.actuator.timeout + timedelta(seconds=5),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=_ACTUATE_RETRY,
                # A change in flight must land (or fail) before compensation starts, or the
                # restore could be overtaken by it.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"{s.name} → {weight:g}%",
            )
        except ActivityError as exc:
            raise self._step_failed(s.name, f"actuation to {weight:g}% failed: {cause_of(exc)}") from None
        finally:
            self._actuating.discard(s.name)
        status.weight = weight
        self._log(
            "actuation",
            f"{s.name} → {weight:g}% ({s.version})",
            service=s.name,
            data={"weight": weight, "version": s.version, "step": index + 1},
        )
        stop_if_cancelled()

    def _step_change(self, s: ServiceSettings, index: int) -> SetExposure:
        return SetExposure(
            service=s.name,
            actuator=s.actuator,
            version=s.version,
            weight=s.steps[index],
            rollout_id=self._id,
            idempotency_key=f"{self._id}/{s.name}/step-{index + 1}",
        )

    async def _await_served(self, s: ServiceSettings, index: int) -> None:
        """A flag change reaches the services a moment after it is made (SDKs poll, providers
        watch files): the bake starts once the actuator sees it served, or after `propagation`."""
        self._set_state(
            s.name, ServiceState.PROPAGATING, note=f"until served (≤ {format_duration(s.propagation)})"
        )
        try:
            seen = await workflow.execute_activity(
                propagation_activity.await_served,
                PropagationRequest(change=self._step_change(s, index), propagation=s.propagation),
                start_to_close_timeout=s.propagation + timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=3),
                summary=f"{s.name}@{s.steps[index]:g}% until served",
            )
        except ActivityError as exc:
            raise self._step_failed(
                s.name, f"waiting for the change to be served failed: {cause_of(exc)}"
            ) from None
        if seen.served:
            message = f"{s.name}@{s.steps[index]:g}% served after {seen.seconds:.1f}s"
        elif seen.observable:
            message = f"{s.name}@{s.steps[index]:g}% not seen served within {format_duration(s.propagation)}; baking"
        else:
            message = f"{s.name}@{s.steps[index]:g}%: waited propagation {format_duration(s.propagation)}"
        self._log("propagation", message, service=s.name, data=seen.model_dump())

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
            # A bake that can end re-reads the exposure as it does: drift never promotes.
            actuator=s.actuator if bake is not None else None,
            learned=self._learned.get(s.name, {}) if workflow.patched("carry-gate-noise") else {},
        )

    async def _bake(self, s: ServiceSettings, index: int) -> None:
        if s.actuator.type in FLAG_PLATFORMS:
            await self._await_served(s, index)
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
            raise self._step_failed(s.name, f"bake at {weight:g}% failed: {cause_of(exc)}") from None
        self._record_verdicts(s.name, weight, result)
        if result.learned:
            self._learned[s.name] = result.learned
        if result.drift is not None:
            self._drifted(result.drift)
        if not result.passed:
            self._notify("gate_failed", f"gate failed at {weight:g}%: {result.reason}", service=s.name)
            raise self._step_failed(s.name, f"gate failed at {weight:g}%: {result.reason}")

    async def _hold(self, group: Sequence[ServiceSettings], index: int) -> None:
        """Paused after a bake: keep evaluating gates (a failure still rolls back) until resumed."""
        for s in group:
            if s.name not in self._drifts:
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
            await cancel_all(tasks)
            raise
        await cancel_all(tasks)
        for s, hold in zip(group, holds, strict=True):
            if hold not in done or hold.cancelled():
                continue
            try:
                result = hold.result()
            except ActivityError as exc:
                raise self._step_failed(
                    s.name, f"gate evaluation while paused failed: {cause_of(exc)}"
                ) from None
            self._record_verdicts(s.name, s.steps[index], result)
            self._notify("gate_failed", f"gate failed while paused: {result.reason}", service=s.name)
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
                pending=g.verdict.pending and not g.failed,
                failed=g.failed,
                p_value=_number(g.verdict.evidence.get("p_value")),
                requests=_requests_seen(g.verdict.evidence),
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


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _requests_seen(evidence: dict[str, float | int | str | None]) -> float | None:
    """Requests of both arms the gate has weighed, when it says."""
    arms = [_number(evidence.get(f"{arm}_requests")) for arm in ("canary", "baseline")]
    return sum(a for a in arms if a is not None) if any(a is not None for a in arms) else None


def start_search_attributes(plan: RolloutPlan, *, train: str | None = None) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(visibility.PLAN, plan.metadata.name),
        SearchAttributePair(visibility.PHASE, Phase.PENDING.value),
        SearchAttributePair(visibility.SERVICES, [s.name for s in plan.spec.services]),
    ]
    if train is not None:
        pairs.append(SearchAttributePair(visibility.TRAIN, train))
    return TypedSearchAttributes(pairs)
