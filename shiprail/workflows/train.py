"""The train: one long-lived workflow per release train (id `train-<name>`) that holds the
manifest. Boarding lives here and nowhere else, so it is as durable as Temporal itself.

Every change is an update whose validator refuses what the boarding rules forbid before
anything reaches history, and, when the train names operators, what is not signed by one
of them (shiprail.authz, as for rollouts). Departures (started by the Schedule `train-<name>`) claim their
cars through `claim` and report each car's outcome back through `record`. The manifest of
a departure is frozen at its cut-off: boarding and unboarding for it are refused after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from shiprail.authz import FRESHNESS, refusal
    from shiprail.plan.cars import Car, boarding_problem, take_for_departure, unboarding_problem
    from shiprail.status import AuditEntry
    from shiprail.train_status import DepartureRecord, SkipRecord, TrainState
    from shiprail.workflows.inputs import (
        BoardRequest,
        Claim,
        ClaimRequest,
        ConfigureRequest,
        ControlRequest,
        PauseRequest,
        Refusal,
        Signed,
        SkipRequest,
        TriggerRequest,
        UnboardRequest,
    )

_KEEP_DEPARTURES = 20
_KEEP_AUDIT = 500
_MAX_REFUSALS = 50  # listed in the audit; past it only counted, so nobody can flood it


def train_workflow_id(name: str) -> str:
    return f"train-{name}"


@workflow.defn(name="Train")
class TrainWorkflow:
    @workflow.init
    def __init__(self, state: TrainState) -> None:
        self._state = state

    @workflow.run
    async def run(self, state: TrainState) -> TrainState:
        await workflow.wait_condition(
            lambda: self._state.closed or workflow.info().is_continue_as_new_suggested()
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._state.closed:
            workflow.continue_as_new(self._state)
        return self._state

    # ---- boarding ------------------------------------------------------------------

    def _cutoff(self, departure: datetime) -> datetime:
        return departure - self._state.train.spec.cutoff

    def _refuse_if_closed(self) -> None:
        if self._state.closed:
            raise ApplicationError(f"train {self._state.train.metadata.name} has been deleted")

    # ---- signed control --------------------------------------------------------------

    def _authorize(self, action: str, request: Signed) -> None:
        """Refuse what the train's `access` does not allow; deterministic, as for rollouts:
        the keys are in the train's definition, the nonces seen in its state."""
        self._refuse_if_closed()
        access = self._state.train.spec.access_rules()
        if access is None:
            return
        target = train_workflow_id(self._state.train.metadata.name)
        why = refusal(access, target, action, request, workflow.now(), set(self._state.nonces), "train")
        if why is not None:
            raise ApplicationError(f"not authorized: {why}", type="NotAuthorized")

    def _accepted(self, request: Signed) -> None:
        if not request.nonce or request.issued_at is None:
            return
        # A nonce older than the freshness window is refused as stale anyway: forget it.
        horizon = workflow.now() - 2 * FRESHNESS
        self._state.nonces = {n: t for n, t in self._state.nonces.items() if t > horizon}
        self._state.nonces[request.nonce] = request.issued_at

    @workflow.signal
    def refused(self, report: Refusal) -> None:
        self._state.refusals += 1
        if self._state.refusals <= _MAX_REFUSALS:
            self._log(f"refused {report.action} by {report.actor}: {report.reason}", report.actor)
        elif self._state.refusals == _MAX_REFUSALS + 1:
            self._log(f"more than {_MAX_REFUSALS} refusals; further ones are counted, not listed", "train")

    @workflow.update
    def set_paused(self, request: PauseRequest) -> str:
        """`train pause` and `resume`, recorded before the client changes the Schedule, so a
        refusal stops them first."""
        self._accepted(request)
        what = "paused" if request.paused else "resumed"
        self._log(f"{what}{': ' + request.reason if request.reason else ''}", request.actor)
        return "ok"

    @set_paused.validator
    def _validate_set_paused(self, request: PauseRequest) -> None:
        self._authorize(request.action, request)

    @workflow.update
    def board(self, request: BoardRequest) -> Car:
        self._accepted(request)
        car = request.car.model_copy(update={"boarded_at": workflow.now(), "boarded_by": request.actor})
        self._state.cars.append(car)
        self._log(f"boarded {car.car} on the departure at {car.departure.isoformat()}", request.actor)
        return car

    @board.validator
    def _validate_board(self, request: BoardRequest) -> None:
        self._authorize("board", request)
        cutoff = self._cutoff(request.car.departure)
        if workflow.now() >= cutoff:
            raise ApplicationError(
                f"boarding for the departure at {request.car.departure.isoformat()} closed at {cutoff.isoformat()}",
                type="BoardingClosed",
            )
        problem = boarding_problem(request.car, self._state.cars)
        if problem:
            raise ApplicationError(problem)

    @workflow.update
    def unboard(self, request: UnboardRequest) -> str:
        self._accepted(request)
        self._state.cars = [c for c in self._state.cars if c.car != request.car]
        reason = f": {request.reason}" if request.reason else ""
        self._log(f"unboarded {request.car}{reason}", request.actor)
        return f"unboarded {request.car}"

    @unboard.validator
    def _validate_unboard(self, request: UnboardRequest) -> None:
        self._authorize("unboard", request)
        problem = unboarding_problem(request.car, self._state.cars)
        if problem:
            raise ApplicationError(problem)
        car = next(c for c in self._state.cars if c.car == request.car)
        cutoff = self._cutoff(car.departure)
        if workflow.now() >= cutoff:
            raise ApplicationError(
                f"the manifest of the departure at {car.departure.isoformat()} was frozen at its cut-off"
                f" ({cutoff.isoformat()}); abort the car's rollout once it departs instead"
            )

    # ---- departures ----------------------------------------------------------------

    @workflow.update
    def claim(self, request: ClaimRequest) -> Claim:
        """A departure takes its cars: those booked up to its scheduled time (and, when it
        was triggered by hand, up to the departure the trigger stood in for)."""
        upto = request.scheduled
        if self._state.trigger_upto is not None:
            upto = max(upto, self._state.trigger_upto)
            self._state.trigger_upto = None
        departing, staying = take_for_departure(self._state.cars, upto)
        self._state.cars = staying
        self._record(DepartureRecord(id=request.departure_id, scheduled=request.scheduled))
        names = ", ".join(c.car for c in departing) or "no cars"
        self._log(f"departure {request.departure_id} claimed {names}", "schedule")
        return Claim(train=self._state.train, cars=departing)

    @claim.validator
    def _validate_claim(self, request: ClaimRequest) -> None:
        self._refuse_if_closed()
        # A claim sent again under its update id gets the first one's cars from the server;
        # one that reaches the train by another way would get none, and the departure would
        # leave empty while its cars were gone: refuse it, so the departure says so.
        if any(d.id == request.departure_id for d in self._state.departures):
            raise ApplicationError(
                f"departure {request.departure_id} has already claimed its cars", type="AlreadyClaimed"
            )

    @workflow.signal
    def record(self, departure: DepartureRecord) -> None:
        self._record(departure)

    def _record(self, departure: DepartureRecord) -> None:
        kept = [d for d in self._state.departures if d.id != departure.id]
        self._state.departures = [*kept, departure][-_KEEP_DEPARTURES:]

    @workflow.update
    def prepare_trigger(self, request: TriggerRequest) -> str:
        self._accepted(request)
        self._state.trigger_upto = request.upto
        self._log("departure triggered by hand", request.actor)
        return "ok"

    @prepare_trigger.validator
    def _validate_trigger(self, request: TriggerRequest) -> None:
        self._authorize("trigger", request)

    @workflow.update
    def note_skip(self, request: SkipRequest) -> str:
        self._accepted(request)
        self._state.skips = [s for s in self._state.skips if s.departs != request.departs]
        self._state.skips.append(
            SkipRecord(departs=request.departs, reason=request.reason, actor=request.actor)
        )
        horizon = workflow.now() - timedelta(days=60)
        self._state.skips = sorted(
            (s for s in self._state.skips if s.departs > horizon), key=lambda s: s.departs
        )
        self._log(f"skips the departure at {request.departs.isoformat()}: {request.reason}", request.actor)
        return "ok"

    @note_skip.validator
    def _validate_skip(self, request: SkipRequest) -> None:
        self._authorize("skip", request)

    @workflow.update
    def configure(self, request: ConfigureRequest) -> str:
        self._accepted(request)
        self._state.train = request.train
        self._log("train definition updated", request.actor)
        return "ok"

    @configure.validator
    def _validate_configure(self, request: ConfigureRequest) -> None:
        """Judged by the access in force, so nobody can lift it by updating the file."""
        self._authorize("update", request)

    @workflow.update
    def close(self, request: ControlRequest) -> int:
        self._accepted(request)
        self._state.closed = True
        dropped = len(self._state.cars)
        self._log(
            f"train deleted ({dropped} boarded cars dropped){': ' + request.reason if request.reason else ''}",
            request.actor,
        )
        return dropped

    @close.validator
    def _validate_close(self, request: ControlRequest) -> None:
        self._authorize("delete", request)

    # ---- queries -------------------------------------------------------------------

    @workflow.query
    def manifest(self) -> TrainState:
        return self._state

    def _log(self, message: str, actor: str, **data: Any) -> None:
        self._state.audit.append(
            AuditEntry(time=workflow.now(), kind="train", message=message, actor=actor, data=data)
        )
        self._state.audit = self._state.audit[-_KEEP_AUDIT:]
