"""Release trains on the real dev server: Schedules with seconds-scale cadences, boarding,
departures running their cars as child rollouts, and the failure and overlap policies."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from temporalio.client import Client
from temporalio.service import RPCError

from shiprail import train_client
from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.temporal import TemporalDevServer, temporal_binary
from shiprail.errors import BadInput
from shiprail.plan import RolloutPlan, parse_plan
from shiprail.plan.loader import parse_train
from shiprail.plan.train import ReleaseTrain
from shiprail.train_status import DepartureRecord
from tests.helpers import plan_document
from tests.workflow.helpers import WEIGHT_GATE, eventually

pytestmark = pytest.mark.usefixtures("worker")

FAST = {"steps": [50, 100], "bake": "1s", "interval": "1s"}


def train_of(name: str, **spec: Any) -> ReleaseTrain:
    spec.setdefault("schedule", {"every": "6s"})
    document = {"apiVersion": "shiprail/v1", "kind": "ReleaseTrain", "metadata": {"name": name}, "spec": spec}
    return parse_train(yaml.safe_dump(document))


def car_plan(
    actuator: ActuatorServer, name: str, services: list[str], *, failing: bool = False, **defaults: Any
) -> RolloutPlan:
    for service in services:
        if service not in actuator.store.exposures:
            actuator.store.add(service, "1.0")
    spec: dict[str, Any] = {"defaults": {**FAST, "gates": ["weight"] if failing else [], **defaults}}
    if failing:
        spec["gates"] = {"weight": {**WEIGHT_GATE, "max": 20}}
    document = plan_document(actuator.url, [{"name": s} for s in services], metadata={"name": name}, **spec)
    return parse_plan(yaml.safe_dump(document))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def departed(client: Client, name: str, at: datetime, timeout: float = 60) -> DepartureRecord:
    """Wait until the train's departure scheduled at `at` has ended; return its record."""
    seen: list[DepartureRecord] = []

    async def check() -> bool:
        state = await train_client.manifest(client, name)
        seen[:] = [d for d in state.departures if abs((d.scheduled - at).total_seconds()) < 1]
        return bool(seen) and seen[0].outcome != "running"

    await eventually(check, timeout, f"the departure of {name} at {at}")
    return seen[0]


@pytest.fixture
async def cleanup(client: Client) -> Any:
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(BadInput):
            await train_client.delete(client, name, "tester")


async def boarding_open_for(client: Client, name: str, seconds: float) -> None:
    """Poll until the next departure's boarding stays open at least `seconds` more, so cars
    boarded one after another share that departure instead of straddling its cut-off."""

    async def check() -> bool:
        return await train_client.boarding_closes_in(client, name) >= seconds

    await eventually(check, 30, f"a boarding window with {seconds}s left")


async def test_dependent_cars_depart_in_order_on_the_cadence(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    name = unique("weekly")
    cleanup.append(name)
    train = train_of(name, schedule={"every": "5s"}, cutoff="1s")
    assert await train_client.create_train(client, train, "tester") == "created"
    assert await train_client.create_train(client, train, "tester") == "updated"
    consumer_services = [unique("checkout")]
    provider_services = [unique("payments")]
    provider = car_plan(actuator, unique("pay"), provider_services)
    consumer = car_plan(actuator, unique("chk"), consumer_services)
    await boarding_open_for(client, name, 2.5)
    first = await train_client.board(client, name, provider, [], "tester")
    second = await train_client.board(client, name, consumer, [provider.metadata.name], "tester")
    assert first.car.departure == second.car.departure
    departure = await departed(client, name, first.car.departure)
    assert departure.outcome == "succeeded", departure
    assert [(c.car, c.phase) for c in departure.cars] == [
        (provider.metadata.name, "succeeded"),
        (consumer.metadata.name, "succeeded"),
    ]
    puts = [c.service for c in actuator.store.puts()]
    assert puts.index(consumer_services[0]) > max(i for i, s in enumerate(puts) if s == provider_services[0])
    scheduled = departure.scheduled
    assert abs((scheduled - first.car.departure).total_seconds()) < 1
    found = [w.id async for w in client.list_workflows(f'ShiprailTrain = "{name}"')]
    assert departure.id in found
    assert all(c.rollout_id in found for c in departure.cars)


async def wait_inside_cutoff(client: Client, name: str, cutoff: float) -> datetime:
    """Poll until the next departure's boarding has closed; return that departure."""
    found: list[datetime] = []

    async def check() -> bool:
        description = await client.get_schedule_handle(train_client.schedule_id(name)).describe()
        departs = description.info.next_action_times[0].astimezone(UTC)
        left = (departs - datetime.now(UTC)).total_seconds()
        found[:] = [departs]
        return 0.5 < left < cutoff - 0.5

    await eventually(check, 30, "the next departure's boarding to close")
    return found[0]


async def test_a_plan_boarded_after_the_cutoff_departs_on_the_next_departure(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    name = unique("cut")
    cleanup.append(name)
    await train_client.create_train(client, train_of(name, schedule={"every": "8s"}, cutoff="5s"), "tester")
    closed = await wait_inside_cutoff(client, name, 5)
    boarding = await train_client.board(
        client, name, car_plan(actuator, unique("late"), [unique("svc")]), [], "t"
    )
    assert boarding.missed == closed
    assert boarding.car.departure == closed + timedelta(seconds=8)
    assert (await departed(client, name, closed)).outcome == "empty"
    departure = await departed(client, name, boarding.car.departure)
    assert [(c.car, c.phase) for c in departure.cars] == [(boarding.car.car, "succeeded")]


async def test_overlap_skip_skips_a_departure_while_one_runs_and_says_so(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    name = unique("busy")
    cleanup.append(name)
    await train_client.create_train(client, train_of(name, schedule={"every": "3s"}), "tester")
    slow = car_plan(actuator, unique("slow"), [unique("svc")], steps=[100], bake="8s")
    boarding = await train_client.board(client, name, slow, [], "tester")

    async def skipped() -> bool:
        description = await client.get_schedule_handle(train_client.schedule_id(name)).describe()
        return description.info.num_actions_skipped_overlap >= 1

    await eventually(skipped, 30, "a departure skipped by overlap")
    with pytest.raises(BadInput, match="overlap: skip"):
        await train_client.trigger(client, name, "tester")
    description, state = await train_client.describe(client, name)
    shown = train_client.show_document(name, description, state)
    assert shown["skipped_by_overlap"] >= 1
    assert shown["running"]
    assert (await departed(client, name, boarding.car.departure, timeout=60)).outcome == "succeeded"


async def _three_cars(
    client: Client, actuator: ActuatorServer, name: str, on_failure: str
) -> tuple[DepartureRecord, list[str]]:
    await train_client.create_train(
        client, train_of(name, schedule={"every": "4s"}, on_failure=on_failure, cutoff="1s"), "tester"
    )
    bad = car_plan(actuator, unique("bad"), [unique("pay")], failing=True)
    dependent = car_plan(actuator, unique("dep"), [unique("chk")])
    independent = car_plan(actuator, unique("ind"), [unique("srch")])
    names = [p.metadata.name for p in (bad, dependent, independent)]
    await boarding_open_for(client, name, 2.5)
    first = await train_client.board(client, name, bad, [], "tester")
    for plan, needs in ((dependent, [bad.metadata.name]), (independent, [])):
        boarding = await train_client.board(client, name, plan, needs, "tester")
        if boarding.car.departure != first.car.departure:
            pytest.fail("the boarding straddled a cut-off")  # pragma: no cover
    return await departed(client, name, first.car.departure, timeout=90), names


async def test_a_failing_car_stops_the_train_under_stop(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    name = unique("stop")
    cleanup.append(name)
    departure, (bad, dependent, independent) = await _three_cars(client, actuator, name, "stop")
    outcomes = {c.car: c.outcome for c in departure.cars}
    assert outcomes == {
        bad: "rolled_back",
        dependent: "not started: train stopped",
        independent: "not started: train stopped",
    }
    assert departure.outcome == "failed"


async def test_independent_cars_still_run_under_continue(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    name = unique("cont")
    cleanup.append(name)
    departure, (bad, dependent, independent) = await _three_cars(client, actuator, name, "continue")
    outcomes = {c.car: c.outcome for c in departure.cars}
    assert outcomes == {bad: "rolled_back", dependent: f"skipped: depends on {bad}", independent: "succeeded"}
    assert departure.outcome == "failed"


async def test_pause_resume_skip_and_trigger(
    client: Client, actuator: ActuatorServer, cleanup: list[str], temporal_server: TemporalDevServer
) -> None:
    name = unique("ctl")
    cleanup.append(name)
    await train_client.create_train(client, train_of(name, schedule={"every": "1h"}), "tester")
    listed = subprocess.run(
        [str(temporal_binary()), "schedule", "list", "--address", temporal_server.address, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert train_client.schedule_id(name) in {s["scheduleId"] for s in json.loads(listed.stdout)}
    handle = client.get_schedule_handle(train_client.schedule_id(name))
    await train_client.pause(client, name, "change freeze", "tester")
    assert (await handle.describe()).schedule.state.paused
    before = (await handle.describe()).info.next_action_times[0]
    departs = await train_client.departures_to_skip(client, name, day=None)
    await train_client.skip(client, name, departs, "release party", "tester")
    description, state = await train_client.describe(client, name)
    assert before not in description.info.next_action_times
    assert [s.reason for s in state.skips] == ["release party"]
    boarding = await train_client.board(
        client, name, car_plan(actuator, unique("now"), [unique("svc")]), [], "t"
    )
    assert boarding.car.departure > before
    # A trigger departs now, even while paused, with the cars booked on the next departure.
    assert await train_client.trigger(client, name, "tester") == "started"

    async def ran() -> bool:
        state = await train_client.manifest(client, name)
        return any(d.outcome == "succeeded" and d.cars for d in state.departures)

    await eventually(ran, 60, "the triggered departure")
    await train_client.resume(client, name, "", "tester")
    assert not (await handle.describe()).schedule.state.paused
    assert await train_client.delete(client, name, "tester") == 0
    cleanup.remove(name)


async def test_the_trains_windows_hold_every_car_until_an_override(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    from shiprail.status import Phase
    from shiprail.workflows.rollout import RolloutWorkflow
    from tests.workflow.helpers import control, wait_status

    name = unique("frozen")
    cleanup.append(name)
    now = datetime.now(UTC)
    freeze = {
        "from": f"{now - timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}",
        "to": f"{now + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}",
    }
    train = train_of(
        name, schedule={"every": "4s"}, cutoff="1s", windows={"deny": [{**freeze, "reason": "train freeze"}]}
    )
    await train_client.create_train(client, train, "tester")
    boarding = await train_client.board(
        client, name, car_plan(actuator, unique("car"), [unique("svc")]), [], "tester"
    )
    rollout_ids: list[str] = []

    async def started() -> bool:
        state = await train_client.manifest(client, name)
        rollout_ids[:] = [c.rollout_id for d in state.departures for c in d.cars if c.rollout_id]
        if not rollout_ids:
            return False
        # The manifest names a car's rollout as the departure starts it; ask it only once it runs.
        try:
            await client.get_workflow_handle(rollout_ids[0]).describe()
        except RPCError:
            return False
        return True

    await eventually(started, 30, "the car's rollout")
    handle = client.get_workflow_handle(rollout_ids[0])
    waiting = await wait_status(handle, lambda s: s.phase is Phase.WAITING_WINDOW, what="waiting_window")
    assert waiting.services[0].note.endswith("after train freeze")
    await handle.execute_update(RolloutWorkflow.override, control(reason="ship it"))
    assert (await departed(client, name, boarding.car.departure)).outcome == "succeeded"


async def test_a_departure_is_announced_when_it_leaves_and_when_it_ends(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    from tests.workflow.test_notify import Receiver

    receiver = Receiver()
    try:
        name = unique("loud")
        cleanup.append(name)
        train = train_of(
            name, schedule={"every": "4s"}, cutoff="1s", notify=[{"type": "webhook", "url": receiver.url}]
        )
        await train_client.create_train(client, train, "tester")
        boarding = await train_client.board(
            client, name, car_plan(actuator, unique("car"), [unique("svc")]), [], "t"
        )
        await departed(client, name, boarding.car.departure)

        async def both() -> bool:
            return len([b for b in receiver.events("/") if b["train"] == name and b["data"].get("cars")]) >= 2

        await eventually(both, 30, "the departure's two announcements")
        messages = [b["message"] for b in receiver.events("/") if b["data"].get("cars")]
        assert messages[0] == f"departs with {boarding.car.car}"
        assert messages[-1].startswith("succeeded: all 1 cars succeeded")
    finally:
        receiver.server.shutdown()


async def test_a_claim_sent_again_gets_the_same_cars_and_no_other_way_claims_twice(
    client: Client, actuator: ActuatorServer, cleanup: list[str]
) -> None:
    """A departure's claim takes its cars off the train; when the worker running it is killed
    after the train applied it, the retry must get those cars back, not an empty manifest."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.testing import ActivityEnvironment

    from shiprail.activities.trains import claim_cars
    from shiprail.workflows.inputs import ClaimRequest
    from shiprail.workflows.train import TrainWorkflow, train_workflow_id

    name = unique("twice")
    cleanup.append(name)
    # A cadence that will not come round during the test: the claims here are the only ones.
    await train_client.create_train(client, train_of(name, schedule={"cron": ["0 0 1 1 *"]}), "tester")
    plan = car_plan(actuator, unique("car"), [unique("svc")])
    await train_client.board(client, name, plan, [], "tester")
    request = ClaimRequest(
        train=name, departure_id=f"{name}-departure", scheduled=datetime(2031, 1, 1, tzinfo=UTC)
    )
    environment = ActivityEnvironment(client)
    first = await environment.run(claim_cars, request)
    again = await environment.run(claim_cars, request)
    assert [c.car for c in first.cars] == [c.car for c in again.cars] == [plan.metadata.name]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await client.get_workflow_handle(train_workflow_id(name)).execute_update(TrainWorkflow.claim, request)
    assert "already claimed its cars" in str(refused.value.cause)


async def test_a_departure_that_cannot_claim_its_cars_ends_failed_and_says_why(client: Client) -> None:
    from shiprail.client import TASK_QUEUE
    from shiprail.workflows.departure import DepartureWorkflow
    from shiprail.workflows.inputs import DepartureInput

    name = unique("gone")
    record = await client.execute_workflow(
        DepartureWorkflow.run,
        DepartureInput(train=name),
        id=f"train-{name}-departure",
        task_queue=TASK_QUEUE,
        result_type=DepartureRecord,
        execution_timeout=timedelta(seconds=30),
    )
    assert record.outcome == "failed"
    assert record.reason == f"could not claim its cars: train {name} is not running (deleted?)"
