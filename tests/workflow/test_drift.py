"""Drift on the real dev server: an exposure changed behind the rollout's back holds it in
`paused` with the service `drifted` and never promotes; `resume` accepts the exposure as
found and goes on, `abort` rolls back to the exposure recorded before the rollout."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from shiprail.demo.actuator import ActuatorServer
from shiprail.status import Exposure, Phase, RolloutStatus, ServiceState
from shiprail.workflows.rollout import RolloutWorkflow
from tests.workflow.helpers import control, eventually, make_plan, start, wait_status
from tests.workflow.test_notify import Receiver

pytestmark = pytest.mark.usefixtures("worker")


def meddle(actuator: ActuatorServer, service: str, weight: float) -> None:
    """Someone changes the weight by hand, not through the rollout."""
    current = actuator.store.exposures[service]
    actuator.store.exposures[service] = Exposure(
        service=service,
        stable_version=current.stable_version,
        canary_version=current.canary_version,
        weight=weight,
    )


async def _drifted_rollout(
    client: Client, actuator: ActuatorServer, rollout_id: str, service: str, **spec: Any
) -> WorkflowHandle[Any, RolloutStatus]:
    actuator.store.add(service, "1.0")
    defaults = {"steps": [10, 50, 100], "bake": "4s", "interval": "1s"}
    plan = make_plan(actuator.url, [{"name": service}], defaults=defaults, **spec)
    handle = await start(client, plan, rollout_id)
    await wait_status(
        handle, lambda s: s.services[0].state is ServiceState.BAKING and s.services[0].step == 1
    )
    meddle(actuator, service, 30)
    held = await wait_status(handle, lambda s: s.phase is Phase.PAUSED, what="held for drift", timeout=30)
    assert held.services[0].state is ServiceState.DRIFTED
    assert "expected 10%, found 30%" in held.services[0].note
    return handle


async def test_drift_holds_the_rollout_and_resume_accepts_it(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    receiver = Receiver()
    handle = await _drifted_rollout(
        client,
        actuator,
        rollout_id,
        "drift-a",
        notify=[{"type": "webhook", "url": receiver.url, "events": ["drift"]}],
    )

    async def announced() -> bool:
        return bool(receiver.events("/"))

    await eventually(announced, 20, "the drift notification")
    receiver.server.shutdown()
    assert (
        receiver.events("/")[0]["service"] == "drift-a" and "found 30%" in receiver.events("/")[0]["message"]
    )
    audit = await handle.query(RolloutWorkflow.audit)
    drift = [e for e in audit if e.kind == "drift"]
    assert drift and drift[0].data["expected_weight"] == 10 and drift[0].data["found"]["weight"] == 30
    # Held: no step is promoted while it drifts, however long it waits.
    await wait_status(handle, lambda s: s.phase is Phase.PAUSED, what="still held")
    assert [c.weight for c in actuator.store.puts() if c.service == "drift-a"] == [10.0]
    answer = await handle.execute_update(RolloutWorkflow.resume, control())
    assert "accepted the drift of drift-a" in answer
    result = await handle.result()
    assert result.phase is Phase.SUCCEEDED
    assert [c.weight for c in actuator.store.puts() if c.service == "drift-a"] == [10.0, 50.0, 100.0]


async def test_abort_of_a_drifted_rollout_restores_the_recorded_original(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    handle = await _drifted_rollout(client, actuator, rollout_id, "drift-b")
    await handle.execute_update(RolloutWorkflow.abort, control(reason="someone is editing weights"))
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK
    assert actuator.store.exposures["drift-b"] == Exposure(service="drift-b", stable_version="1.0")
