"""One departure of a release train, started by the train's Schedule (`train-<name>`).

It claims its cars from the train workflow (the manifest, frozen at the cut-off), then
runs each car as a child `Rollout` with its own compensation: dependencies first,
boarding order otherwise, independent cars together when the train is `parallel`. A car
that does not succeed stops the train (`on_failure: stop`) or only the cars depending on
it (`continue`); every car's outcome is reported, to the web UI's details and back to the
train workflow for `train show`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    import shiprail.visibility as visibility
    from shiprail.activities import trains as train_activities
    from shiprail.notifiers import Notification
    from shiprail.plan.cars import Car, blocked_by, car_waves
    from shiprail.plan.notify import NotifyTarget
    from shiprail.plan.train import ReleaseTrain
    from shiprail.status import Phase, RolloutStatus
    from shiprail.train_status import (
        EMPTY,
        FAILED,
        NOT_STARTED,
        SKIPPED,
        SUCCEEDED,
        CarRecord,
        DepartureRecord,
        render_departure,
    )
    from shiprail.workflows.announce import announce, delivered
    from shiprail.workflows.inputs import ClaimRequest, DepartureInput, RolloutInput
    from shiprail.workflows.rollout import RolloutWorkflow, start_search_attributes
    from shiprail.workflows.train import train_workflow_id

_SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def car_rollout_id(car: str, train: str, scheduled: datetime) -> str:
    return f"{car}-{train}-{scheduled:%Y%m%d-%H%M%S}"


@workflow.defn(name="Departure")
class DepartureWorkflow:
    def __init__(self) -> None:
        self._train_name = ""
        self._zone = "UTC"
        self._record: DepartureRecord | None = None
        self._targets: list[NotifyTarget] = []
        self._sent: list[asyncio.Future[Any]] = []

    @workflow.run
    async def run(self, request: DepartureInput) -> DepartureRecord:
        info = workflow.info()
        scheduled = info.typed_search_attributes.get(_SCHEDULED_START) or workflow.now()
        self._train_name = request.train
        record = self._record = DepartureRecord(id=info.workflow_id, scheduled=scheduled)
        try:
            claim = await workflow.execute_activity(
                train_activities.claim_cars,
                ClaimRequest(train=request.train, departure_id=info.workflow_id, scheduled=scheduled),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=10),
                summary=f"claim the cars of train {request.train}",
            )
        except ActivityError as exc:
            if not workflow.patched("departure-records-a-failed-claim"):
                raise
            # Without its cars a departure has nothing to run, but it must not vanish: the
            # train's record and its announcements say it failed, and why.
            cause = getattr(exc.cause, "message", None) or str(exc.cause or exc)
            await self._end(FAILED, f"could not claim its cars: {cause}")
            return record
        self._zone = claim.train.spec.schedule.timezone
        self._targets = claim.train.spec.notify
        record.cars = [CarRecord(car=c.car) for c in claim.cars]
        if not claim.cars:
            await self._end(EMPTY, "no cars were boarded")
            return record
        await self._report()
        self._announce(f"departs with {', '.join(c.car for c in claim.cars)}")
        try:
            failed = await self._run_cars(claim.train, claim.cars, scheduled)
        except asyncio.CancelledError:
            await self._end(FAILED, "departure cancelled: running cars were asked to roll back")
            raise
        if failed:
            await self._end(
                FAILED, f"{len(failed)} of {len(claim.cars)} cars did not succeed: {', '.join(failed)}"
            )
        else:
            await self._end(SUCCEEDED, f"all {len(claim.cars)} cars succeeded")
        return record

    async def _run_cars(self, train: ReleaseTrain, cars: list[Car], scheduled: datetime) -> list[str]:
        by_name = {c.car: c for c in cars}
        not_ok: list[str] = []
        stopped = False
        for wave in car_waves(cars, parallel=train.spec.parallel):
            runnable = []
            for name in wave:
                blocker = blocked_by(by_name[name], not_ok)
                if stopped:
                    self._set(name, NOT_STARTED, note="train stopped")
                elif blocker is not None:
                    self._set(name, SKIPPED, note=f"depends on {blocker}")
                else:
                    runnable.append(by_name[name])
                    continue
                not_ok.append(name)
            await self._report()
            phases = await asyncio.gather(*(self._run_car(train, car, scheduled) for car in runnable))
            for car, phase in zip(runnable, phases, strict=True):
                if phase != Phase.SUCCEEDED.value:
                    not_ok.append(car.car)
                    stopped = stopped or train.spec.on_failure == "stop"
        return not_ok

    async def _run_car(self, train: ReleaseTrain, car: Car, scheduled: datetime) -> str:
        name = train.metadata.name
        rollout_id = car_rollout_id(car.car, name, scheduled)
        self._set(car.car, Phase.RUNNING.value, rollout_id=rollout_id)
        await self._report()
        services = ", ".join(f"{s.name}@{s.version}" for s in car.plan.spec.services)
        try:
            status: RolloutStatus = await workflow.execute_child_workflow(
                RolloutWorkflow.run,
                RolloutInput(
                    plan=car.plan,
                    rollout_id=rollout_id,
                    started_by=f"train {name} (boarded by {car.boarded_by})",
                    train=name,
                    train_windows=train.spec.windows,
                    train_budget_policy=train.spec.budget_policy,
                ),
                id=rollout_id,
                search_attributes=start_search_attributes(car.plan, train=name),
                static_summary=f"car {car.car} of train {name} ({scheduled:%Y-%m-%d %H:%M} UTC): {services}"[
                    :200
                ],
                # Cancelling a departure asks its cars to compensate; it never kills them mid-change.
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            )
            phase, note = status.phase.value, status.reason
        except ChildWorkflowError as exc:
            cause = exc.cause
            phase = Phase.FAILED.value
            note = getattr(cause, "message", None) or str(cause or exc)
        self._set(car.car, phase, note=note)
        await self._report()
        return phase

    def _set(self, car: str, phase: str, *, note: str = "", rollout_id: str | None = None) -> None:
        assert self._record is not None
        for record in self._record.cars:
            if record.car == car:
                record.phase, record.note = phase, note
                if rollout_id is not None:
                    record.rollout_id = rollout_id

    async def _end(self, outcome: str, reason: str) -> None:
        assert self._record is not None
        self._record.outcome, self._record.reason, self._record.ended_at = outcome, reason, workflow.now()
        await self._report()
        self._announce(f"{outcome}: {reason}", outcome=outcome)
        await delivered(self._sent)

    def _announce(self, message: str, **data: Any) -> None:
        assert self._record is not None
        notification = Notification(
            event="departure",
            subject=self._record.id,
            train=self._train_name,
            phase=self._record.outcome,
            message=message,
            time=workflow.now(),
            data={"cars": [c.model_dump() for c in self._record.cars], **data},
        )
        self._sent += announce(self._targets, notification)

    async def _report(self) -> None:
        assert self._record is not None
        workflow.set_current_details(
            render_departure(self._train_name, self._record.scheduled, self._zone, self._record)
        )
        handle = workflow.get_external_workflow_handle(train_workflow_id(self._train_name))
        # The train may have been deleted while this departure ran: nobody keeps its record.
        with contextlib.suppress(Exception):
            await handle.signal("record", self._record)

    @workflow.query
    def departure(self) -> DepartureRecord | None:
        return self._record


def departure_search_attributes(train: str) -> list[SearchAttributePair[str]]:
    return [SearchAttributePair(visibility.TRAIN, train)]
