"""Signed train control on the real dev server: a train with `spec.access` takes boarding,
unboarding, skips, triggers, pauses, updates and deletion only from its operators, signed
with their keys; forged, tampered and replayed requests are refused before they touch the
train or its Schedule, and every refusal is in the train's audit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from shiprail import train_client
from shiprail.authz import sign
from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.errors import BadInput
from shiprail.plan.cars import Car
from shiprail.workflows.inputs import BoardRequest, UnboardRequest
from shiprail.workflows.train import TrainWorkflow, train_workflow_id
from tests.helpers import signing_identity
from tests.workflow.test_trains import car_plan, train_of, unique

pytestmark = pytest.mark.usefixtures("worker")


async def test_only_the_trains_operators_change_it_and_refusals_are_audited(
    client: Client,
    actuator: ActuatorServer,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    _, bob, bob_public = signing_identity(tmp_path, "bob")
    alice_pem, alice, alice_public = signing_identity(tmp_path, "alice")
    name = unique("guarded")
    access: dict[str, Any] = {"keys": {"bob": bob_public, "alice": alice_public}}
    train = train_of(name, schedule={"every": "1h"}, operators=["bob"], access=access)
    assert await train_client.create_train(client, train, "bob", key=bob) == "created"
    schedule = client.get_schedule_handle(train_client.schedule_id(name))
    handle = client.get_workflow_handle(train_workflow_id(name))
    try:
        plan = car_plan(actuator, unique("car"), [unique("svc")])

        # Unsigned, as anyone may send it straight to Temporal; then an approver, who is
        # not an operator; then Alice claiming to be Bob.
        with pytest.raises(BadInput, match="board must be signed: this train's file names its operators"):
            await train_client.board(client, name, plan, [], "bob")
        with pytest.raises(BadInput, match="'alice' is not one of this train's operators"):
            await train_client.board(client, name, plan, [], "alice", key=alice)
        with pytest.raises(BadInput, match="the signature was not made with bob's key for this board"):
            await train_client.board(client, name, plan, [], "bob", key=alice)
        boarding = await train_client.board(client, name, plan, [], "bob", key=bob)
        assert boarding.car.boarded_by == "bob"

        # A signed request cannot be changed (another plan boarded under Bob's signature)
        # nor sent twice.
        other = Car(
            car="intruder",
            plan=car_plan(actuator, "intruder", [unique("svc")]),
            departure=boarding.car.departure,
        )
        signed = sign(
            bob, train_workflow_id(name), "board", BoardRequest(car=other, actor="bob"), datetime.now(UTC)
        )
        tampered = signed.model_copy(
            update={"car": other.model_copy(update={"depends_on": [plan.metadata.name]})}
        )
        with pytest.raises(WorkflowUpdateFailedError) as changed:
            await handle.execute_update(TrainWorkflow.board, tampered)
        assert "the signature was not made with bob's key" in str(changed.value.cause)
        assert (await handle.execute_update(TrainWorkflow.board, signed)).car == "intruder"
        unboard = sign(
            bob,
            train_workflow_id(name),
            "unboard",
            UnboardRequest(car="intruder", actor="bob"),
            datetime.now(UTC),
        )
        assert await handle.execute_update(TrainWorkflow.unboard, unboard) == "unboarded intruder"
        with pytest.raises(WorkflowUpdateFailedError) as replayed:
            await handle.execute_update(TrainWorkflow.board, signed)
        assert "already used (a replay)" in str(replayed.value.cause)

        # Nothing Alice asks for reaches the Schedule.
        before = (await schedule.describe()).info.next_action_times[0]
        with pytest.raises(BadInput, match="not one of this train's operators"):
            await train_client.pause(client, name, "freeze", "alice", key=alice)
        departs = await train_client.departures_to_skip(client, name, day=None)
        with pytest.raises(BadInput, match="not one of this train's operators"):
            await train_client.skip(client, name, departs, "party", "alice", key=alice)
        with pytest.raises(BadInput, match="not one of this train's operators"):
            await train_client.trigger(client, name, "alice", key=alice)
        with pytest.raises(BadInput, match="not one of this train's operators"):
            await train_client.delete(client, name, "alice", key=alice)
        # Nor can she lift the access rules by updating the train from a file without them.
        with pytest.raises(BadInput, match="update must be signed"):
            await train_client.create_train(client, train_of(name, schedule={"every": "1h"}), "alice")
        # The CLI signs with SHIPRAIL_SIGNING_KEY and reports a refusal as bad input.
        command = [sys.executable, "-m", "shiprail", "train", "unboard", name, plan.metadata.name]
        cli = await asyncio.create_subprocess_exec(
            *command,
            "--address",
            temporal_server.address,
            env={**os.environ, "SHIPRAIL_SIGNING_KEY": str(alice_pem), "SHIPRAIL_ACTOR": "alice"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 2 and "'alice' is not one of this train's operators" in err.decode(), err

        description, state = await train_client.describe(client, name)
        assert not description.schedule.state.paused
        assert description.info.next_action_times[0] == before
        assert state.skips == [] and [c.car for c in state.cars] == [plan.metadata.name]
        assert state.train.spec.access is not None

        refusals = [e.message for e in state.audit if e.message.startswith("refused")]
        assert refusals == [
            "refused board by bob: board must be signed: this train's file names its operators"
            " (set SHIPRAIL_SIGNING_KEY)",
            "refused board by alice: 'alice' is not one of this train's operators",
            "refused board by bob: the signature was not made with bob's key for this board of this train",
            *[
                f"refused {action} by alice: 'alice' is not one of this train's operators"
                for action in ("pause", "skip", "trigger", "delete")
            ],
            "refused update by alice: update must be signed: this train's file names its operators"
            " (set SHIPRAIL_SIGNING_KEY)",
            "refused unboard by alice: 'alice' is not one of this train's operators",
        ]

        # Bob may do all of it.
        await train_client.pause(client, name, "freeze", "bob", key=bob)
        assert (await schedule.describe()).schedule.state.paused
        await train_client.resume(client, name, "", "bob", key=bob)
        assert await train_client.unboard(client, name, plan.metadata.name, "bob", "", key=bob)
        assert await train_client.delete(client, name, "bob", key=bob) == 0
    finally:
        with contextlib.suppress(BadInput):
            await train_client.delete(client, name, "bob", key=bob)
