"""Release trains from the client's side: the Schedule `train-<name>` and the train
workflow of the same id, kept in step. The CLI, the demo and the tests drive trains
through these functions only.
"""

from __future__ import annotations

import contextlib
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from shiprail import visibility
from shiprail.authz import sign
from shiprail.client import TASK_QUEUE
from shiprail.errors import BadInput
from shiprail.plan.cadence import nominal_departures, nominal_for
from shiprail.plan.cars import Car
from shiprail.plan.models import RolloutPlan
from shiprail.plan.train import ReleaseTrain
from shiprail.train_status import TrainState
from shiprail.workflows.departure import DepartureWorkflow
from shiprail.workflows.inputs import (
    BoardRequest,
    ConfigureRequest,
    ControlRequest,
    DepartureInput,
    PauseRequest,
    Refusal,
    Signed,
    SkipRequest,
    TriggerRequest,
    UnboardRequest,
)
from shiprail.workflows.train import TrainWorkflow, train_workflow_id

_OVERLAP = {"skip": ScheduleOverlapPolicy.SKIP, "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE}


def _train_attribute(name: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(visibility.TRAIN, name)])


def _running(description: ScheduleDescription) -> list[str]:
    return [
        a.workflow_id
        for a in description.info.running_actions
        if isinstance(a, ScheduleActionExecutionStartWorkflow)
    ]


def schedule_id(name: str) -> str:
    return f"train-{name}"


def departure_workflow_id(name: str) -> str:
    """Temporal appends each departure's scheduled time to it."""
    return f"train-{name}-departure"


def _spec(train: ReleaseTrain, skip: list[ScheduleCalendarSpec]) -> ScheduleSpec:
    schedule = train.spec.schedule
    return ScheduleSpec(
        cron_expressions=list(schedule.cron),
        intervals=[ScheduleIntervalSpec(every=schedule.every)] if schedule.every else [],
        skip=skip,
        jitter=schedule.jitter or None,
        time_zone_name=schedule.timezone,
    )


def _schedule(train: ReleaseTrain, *, skip: list[ScheduleCalendarSpec], state: ScheduleState) -> Schedule:
    name = train.metadata.name
    cadence = ", ".join(
        [
            *train.spec.schedule.cron,
            *([f"every {train.spec.schedule.every}"] if train.spec.schedule.every else []),
        ]
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DepartureWorkflow.run,
            DepartureInput(train=name),
            id=departure_workflow_id(name),
            task_queue=TASK_QUEUE,
            typed_search_attributes=_train_attribute(name),
            static_summary=f"departure of train {name} ({cadence}, {train.spec.schedule.timezone})"[:200],
        ),
        spec=_spec(train, skip),
        policy=SchedulePolicy(overlap=_OVERLAP[train.spec.overlap], catchup_window=train.spec.catchup_window),
        state=state,
    )


async def create_train(client: Client, train: ReleaseTrain, actor: str, *, key: bytes | None = None) -> str:
    """Create the train, or bring an existing one in line with the file: "created" or "updated".
    Idempotent; boarded cars, skips and the paused state survive an update."""
    name = train.metadata.name
    await client.start_workflow(
        TrainWorkflow.run,
        TrainState(train=train),
        id=train_workflow_id(name),
        task_queue=TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=_train_attribute(name),
        static_summary=f"release train {name}: boarding and departures",
    )
    await _train_update(
        client, name, TrainWorkflow.configure, ConfigureRequest(train=train, actor=actor), "update", key
    )
    try:
        await client.create_schedule(
            schedule_id(name),
            _schedule(train, skip=[], state=ScheduleState(note=f"created by {actor}")),
            search_attributes=_train_attribute(name),
        )
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def updated(current: ScheduleUpdateInput) -> ScheduleUpdate:
        old = current.description.schedule
        return ScheduleUpdate(schedule=_schedule(train, skip=list(old.spec.skip), state=old.state))

    await client.get_schedule_handle(schedule_id(name)).update(updated)
    return "updated"


async def describe(client: Client, name: str) -> tuple[ScheduleDescription, TrainState]:
    handle = client.get_schedule_handle(schedule_id(name))
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise _no_train(name) from None
        raise
    return description, await manifest(client, name)


def _no_train(name: str) -> BadInput:
    return BadInput(f"no release train {name!r} (create it with `shiprail train create FILE`)")


async def manifest(client: Client, name: str) -> TrainState:
    try:
        state: TrainState = await client.get_workflow_handle(train_workflow_id(name)).query(
            TrainWorkflow.manifest
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise _no_train(name) from None
        raise
    return state


async def _train_update(
    client: Client, name: str, update: Any, request: Signed, action: str, key: bytes | None
) -> Any:
    """Send a train control update, signed with `key` when there is one (a train with
    `spec.access` refuses unsigned ones); a refusal by the access rules is reported back to
    the train, since a rejected update leaves nothing in its history."""
    if key is not None:
        request = sign(key, train_workflow_id(name), action, request, datetime.now(UTC))
    handle = client.get_workflow_handle(train_workflow_id(name))
    try:
        return await handle.execute_update(update, request)
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        if getattr(exc.cause, "type", None) == "BoardingClosed":
            raise _BoardingClosed(message) from None
        if getattr(exc.cause, "type", None) == "NotAuthorized":
            report = Refusal(
                action=action, actor=request.actor, reason=message.removeprefix("not authorized: ")
            )
            with contextlib.suppress(RPCError):
                await handle.signal(TrainWorkflow.refused, report)
        raise BadInput(f"refused: {message}") from None
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise _no_train(name) from None
        raise


class _BoardingClosed(BadInput):
    """The cut-off passed between choosing a departure and the train's judging it."""


@dataclass(frozen=True)
class Boarding:
    car: Car
    cutoff: datetime
    missed: datetime | None  # a departure whose boarding had closed, so the car takes the next
    zone: zoneinfo.ZoneInfo


async def board(
    client: Client,
    name: str,
    plan: RolloutPlan,
    depends_on: list[str],
    actor: str,
    *,
    key: bytes | None = None,
) -> Boarding:
    """Board `plan` on the next departure whose cut-off has not passed."""
    description, state = await describe(client, name)
    cutoff = state.train.spec.cutoff
    now = datetime.now(UTC)
    upcoming = [t.astimezone(UTC) for t in description.info.next_action_times]
    missed = None
    for departs in upcoming:
        if departs - cutoff > now:
            car = Car(car=plan.metadata.name, plan=plan, depends_on=depends_on, departure=departs)
            request = BoardRequest(car=car, actor=actor)
            try:
                boarded: Car = await _train_update(client, name, TrainWorkflow.board, request, "board", key)
            except _BoardingClosed:
                # It closed while the request was on its way: the car takes the next one.
                missed = missed or departs
                continue
            return Boarding(car=boarded, cutoff=departs - cutoff, missed=missed, zone=state.train.zone)
        missed = missed or departs
    raise BadInput(
        f"train {name} has no upcoming departure whose boarding is still open"
        + (" (it is paused)" if description.schedule.state.paused else "")
    )


async def boarding_closes_in(client: Client, name: str) -> float:
    """Seconds until boarding for the next departure closes (negative when none is open)."""
    description, state = await describe(client, name)
    upcoming = description.info.next_action_times
    if not upcoming:
        return -1.0
    closes = upcoming[0].astimezone(UTC) - state.train.spec.cutoff
    return (closes - datetime.now(UTC)).total_seconds()


async def unboard(
    client: Client, name: str, car: str, actor: str, reason: str, *, key: bytes | None = None
) -> str:
    request = UnboardRequest(car=car, actor=actor, reason=reason)
    result: str = await _train_update(client, name, TrainWorkflow.unboard, request, "unboard", key)
    return result


def _handle(client: Client, name: str) -> ScheduleHandle:
    return client.get_schedule_handle(schedule_id(name))


async def pause(client: Client, name: str, reason: str, actor: str, *, key: bytes | None = None) -> None:
    await describe(client, name)
    request = PauseRequest(actor=actor, reason=reason, paused=True)
    await _train_update(client, name, TrainWorkflow.set_paused, request, request.action, key)
    await _handle(client, name).pause(note=f"paused by {actor}: {reason}")


async def resume(client: Client, name: str, reason: str, actor: str, *, key: bytes | None = None) -> None:
    await describe(client, name)
    request = PauseRequest(actor=actor, reason=reason, paused=False)
    await _train_update(client, name, TrainWorkflow.set_paused, request, request.action, key)
    await _handle(client, name).unpause(note=f"resumed by {actor}{': ' + reason if reason else ''}")


async def skip(
    client: Client,
    name: str,
    departs: list[datetime],
    reason: str,
    actor: str,
    *,
    key: bytes | None = None,
) -> None:
    """Skip these nominal departures: each becomes a year-locked skip entry on the
    Schedule, and the reason is kept by the train for `train show`. The train records them
    first, so a refused request changes nothing on the Schedule."""
    _, state = await describe(client, name)
    nominal = departs
    for t in departs:
        request = SkipRequest(departs=t, actor=actor, reason=reason)
        await _train_update(client, name, TrainWorkflow.note_skip, request, "skip", key)

    def updated(current: ScheduleUpdateInput) -> ScheduleUpdate:
        old = current.description.schedule
        local = [t.astimezone(state.train.zone) for t in nominal]
        entries = [
            ScheduleCalendarSpec(
                second=[ScheduleRange(t.second)],
                minute=[ScheduleRange(t.minute)],
                hour=[ScheduleRange(t.hour)],
                day_of_month=[ScheduleRange(t.day)],
                month=[ScheduleRange(t.month)],
                year=[ScheduleRange(t.year)],
                day_of_week=[ScheduleRange(0, 6)],
                comment=f"skipped by {actor}: {reason}"[:200],
            )
            for t in local
        ]
        old.spec.skip = [*old.spec.skip, *entries]
        return ScheduleUpdate(schedule=old)

    await _handle(client, name).update(updated)


async def trigger(client: Client, name: str, actor: str, *, key: bytes | None = None) -> str:
    """Depart now, honouring `overlap`: "started", or "buffered" behind a running departure.
    Refused under `overlap: skip` while a departure runs."""
    description, state = await describe(client, name)
    running = _running(description)
    if running and state.train.spec.overlap == "skip":
        raise BadInput(f"refused: departure {running[0]} is still running and train {name} has overlap: skip")
    upcoming = [t.astimezone(UTC) for t in description.info.next_action_times]
    await _train_update(
        client,
        name,
        TrainWorkflow.prepare_trigger,
        TriggerRequest(upto=upcoming[0] if upcoming else None, actor=actor),
        "trigger",
        key,
    )
    await _handle(client, name).trigger()
    return "buffered" if running else "started"


async def delete(client: Client, name: str, actor: str, *, key: bytes | None = None) -> int:
    """End the train workflow and delete the Schedule; a running departure finishes. The
    number of boarded cars dropped. The train goes first, so a refused request deletes
    nothing."""
    _, state = await describe(client, name)
    dropped = 0
    if not state.closed:  # else an earlier delete ended the train but not its Schedule
        request = ControlRequest(actor=actor)
        dropped = await _train_update(client, name, TrainWorkflow.close, request, "delete", key)
    await _handle(client, name).delete()
    return dropped


async def list_trains(client: Client) -> list[dict[str, Any]]:
    rows = []
    async for listed in await client.list_schedules():
        if not listed.id.startswith("train-"):
            continue
        info = listed.info
        upcoming = list(getattr(info, "next_action_times", []) or [])
        rows.append(
            {
                "name": listed.id.removeprefix("train-"),
                "paused": bool(getattr(info, "paused", False)),
                "next": upcoming[0].astimezone(UTC).isoformat() if upcoming else None,
            }
        )
    return sorted(rows, key=lambda r: str(r["name"]))


def show_document(name: str, description: ScheduleDescription, state: TrainState) -> dict[str, Any]:
    """`train show --json` (DESIGN §4): times ISO 8601 in the train's time zone."""
    zone = state.train.zone
    cutoff = state.train.spec.cutoff

    def local(t: datetime) -> str:
        return t.astimezone(zone).isoformat()

    info = description.info
    return {
        "name": name,
        "paused": description.schedule.state.paused,
        "note": description.schedule.state.note or "",
        "timezone": state.train.spec.schedule.timezone,
        "overlap": state.train.spec.overlap,
        "on_failure": state.train.spec.on_failure,
        "next": [{"departs": local(t), "cutoff": local(t - cutoff)} for t in info.next_action_times],
        "skipped": [{"departs": local(s.departs), "reason": s.reason, "by": s.actor} for s in state.skips],
        "skipped_by_overlap": info.num_actions_skipped_overlap,
        "missed_catchup_window": info.num_actions_missed_catchup_window,
        "running": _running(description),
        "boarded": [
            {
                "car": c.car,
                "plan": c.plan.metadata.name,
                "depends_on": c.depends_on,
                "departs": local(c.departure),
            }
            for c in state.cars
        ],
        "departures": [
            {
                "id": d.id,
                "scheduled": local(d.scheduled),
                "outcome": d.outcome,
                "reason": d.reason,
                "cars": [
                    {
                        "car": c.car,
                        "rollout_id": c.rollout_id,
                        "phase": c.phase,
                        "outcome": c.outcome,
                        "note": c.note,
                    }
                    for c in d.cars
                ],
            }
            for d in reversed(state.departures)
        ],
    }


async def departures_to_skip(client: Client, name: str, *, day: date | None) -> list[datetime]:
    """The nominal departures `train skip` means: the next one, or every one on `day` (in
    the train's time zone)."""
    description, state = await describe(client, name)
    schedule = state.train.spec.schedule
    if day is None:
        upcoming = description.info.next_action_times
        if not upcoming:
            raise BadInput(f"train {name} has no upcoming departure to skip")
        first = upcoming[0].astimezone(UTC)
        return [nominal_for(schedule, first) or first]
    start = datetime.combine(day, time(), state.train.zone)
    found = nominal_departures(schedule, start, start + timedelta(days=1))
    if not found:
        raise BadInput(f"train {name} has no departure on {day} ({schedule.timezone})")
    return found
