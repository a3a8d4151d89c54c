"""Deploy windows on the real dev server: a step waits in `waiting_window` through a
freeze a few seconds long, `override` lets it go on at once (audited), and a rollback is
never delayed by a closed window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client

from shiprail.demo.actuator import ActuatorServer
from shiprail.plan import RolloutPlan
from shiprail.status import Phase, ServiceState
from shiprail.workflows.rollout import RolloutWorkflow
from tests.workflow.helpers import WEIGHT_GATE, control, make_plan, refused, start, wait_status

pytestmark = pytest.mark.usefixtures("worker")


def _wall(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def frozen_plan(
    actuator: ActuatorServer, service: str, start: datetime, end: datetime, **spec: object
) -> RolloutPlan:
    actuator.store.add(service, "1.0")
    return make_plan(
        actuator.url,
        [{"name": service}],
        windows={
            "timezone": "UTC",
            "deny": [{"from": _wall(start), "to": _wall(end), "reason": "test freeze"}],
        },
        **spec,
    )


async def test_a_step_waits_through_a_short_freeze_and_then_proceeds(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    now = datetime.now(UTC)
    plan = frozen_plan(actuator, "win-a", now - timedelta(seconds=5), now + timedelta(seconds=5))
    handle = await start(client, plan, rollout_id)
    waiting = await wait_status(handle, lambda s: s.phase is Phase.WAITING_WINDOW, what="waiting_window")
    note = waiting.services[0].note
    assert note.startswith("reopens ") and note.endswith("UTC after test freeze")
    assert actuator.store.puts() == []
    result = await handle.result()
    assert result.phase is Phase.SUCCEEDED
    first_put = actuator.store.puts()[0]
    assert first_put.time >= (now + timedelta(seconds=5)).timestamp() - 1.0


async def test_override_lets_a_waiting_rollout_go_on_and_is_audited(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    now = datetime.now(UTC)
    plan = frozen_plan(actuator, "win-b", now - timedelta(seconds=5), now + timedelta(hours=2))
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.phase is Phase.WAITING_WINDOW, what="waiting_window")
    assert "needs a reason" in await refused(handle, RolloutWorkflow.override, control())
    answer = await handle.execute_update(RolloutWorkflow.override, control(reason="hotfix for INC-7"))
    assert "win-b go on now" in answer
    assert "already overridden" in await refused(handle, RolloutWorkflow.override, control(reason="again"))
    result = await handle.result()
    assert result.phase is Phase.SUCCEEDED
    audit = await handle.query(RolloutWorkflow.audit)
    overrides = [e for e in audit if "window override" in e.message]
    assert [(e.actor, e.message) for e in overrides] == [("tester", "window override: hotfix for INC-7")]


async def test_a_rollout_without_windows_refuses_an_override(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    actuator.store.add("win-c", "1.0")
    plan = make_plan(
        actuator.url, [{"name": "win-c"}], defaults={"steps": [100], "bake": "5s", "interval": "1s"}
    )
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING, what="baking")
    assert "no deploy windows" in await refused(handle, RolloutWorkflow.override, control(reason="r"))
    await handle.result()


async def test_a_rollback_is_not_delayed_by_a_closed_window(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    # The freeze starts while the first step bakes; its gate fails at 50 % after the
    # initial delay, inside the freeze, and the restore must go out at once.
    now = datetime.now(UTC)
    plan = frozen_plan(
        actuator,
        "win-d",
        now + timedelta(seconds=3),
        now + timedelta(hours=2),
        defaults={"steps": [50, 100], "bake": "20s", "interval": "1s", "gates": ["weight"]},
        gates={"weight": {**WEIGHT_GATE, "initial_delay": "5s"}},
    )
    handle = await start(client, plan, rollout_id)
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK
    puts = actuator.store.puts()
    assert [c.weight for c in puts] == [50.0, 0.0]
    assert puts[0].time < (now + timedelta(seconds=3)).timestamp()
    assert puts[1].time > (now + timedelta(seconds=3)).timestamp()
    assert puts[1].time - puts[0].time < 15
