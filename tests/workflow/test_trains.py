"""Release trains on the real dev server: Schedules with seconds-scale cadences, boarding,
departures running their cars as child rollouts, and the failure and overlap policies."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

import pytest
import yaml
from temporalio.client import Client

from shiprail import train_client
from shiprail.demo.actuator import ActuatorServer
from shiprail.errors import BadInput
from shiprail.plan import RolloutPlan
from shiprail.plan.loader import parse_train
from shiprail.plan.train import ReleaseTrain
from shiprail.train_status import DepartureRecord
from tests.workflow.helpers import WEIGHT_GATE, eventually

pytestmark = pytest.mark.usefixtures("worker")

FAST = {"steps": [50, 100], "bake": "1s", "interval": "1s"}


def train_of(name: str, **spec: Any) -> ReleaseTrain:
    spec.setdefault("schedule", {"every": "6s"})
    document = {"apiVersion": "shiprail/v1", "kind": "ReleaseTrain", "metadata": {"name": name}, "spec": spec}
    return parse_train(yaml.safe_dump(document))


def car_plan(
    actuator: ActuatorServer, name: str, services: list[str], *, failing: bool = False
) -> RolloutPlan:
    for service in services:
        if service not in actuator.store.exposures:
            actuator.store.add(service, "1.0")
    spec: dict[str, Any] = {"defaults": {**FAST, "gates": ["weight"] if failing else []}}
    if failing:
        spec["gates"] = {"weight": {**WEIGHT_GATE, "max": 20}}
    from tests.helpers import plan_document

    document = plan_document(actuator.url, [{"name": s} for s in services], metadata={"name": name}, **spec)
    from shiprail.plan import parse_plan

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
