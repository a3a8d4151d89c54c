"""A three-service rollout through real HAProxy: it rolls forward step by step, and a gate
failing on the second wave puts every touched backend's weights back exactly."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from shiprail.actuators import for_config
from shiprail.devstack.haproxy import HaproxyServer
from shiprail.plan import RolloutPlan
from shiprail.status import Phase, ServiceState
from tests.actuators.conftest import SERVICES, chain_plan, haproxy_config
from tests.workflow.helpers import start

pytestmark = pytest.mark.usefixtures("worker")


def _plan(haproxy: HaproxyServer, fail_on: str | None, bake: str = "1s") -> RolloutPlan:
    blocks = {
        name: haproxy_config(haproxy, name).model_dump(exclude_none=True, mode="json") for name in SERVICES
    }
    return chain_plan(blocks, fail_on, bake=bake)


async def test_a_failing_second_wave_restores_every_touched_backend_exactly(
    client: Client, haproxy: HaproxyServer, rollout_id: str
) -> None:
    actuators = {name: for_config(haproxy_config(haproxy, name)) for name in SERVICES}
    # Start from uneven weights, so "restored" cannot mean "back to a round default".
    await actuators["alpha"]._set_pair(95, 5)  # type: ignore[attr-defined]
    before = {name: (await a.read(name)).state for name, a in actuators.items()}
    result = await (await start(client, _plan(haproxy, fail_on="beta"), rollout_id)).result()
    assert result.phase is Phase.ROLLED_BACK
    states = {s.name: s.state for s in result.services}
    assert states == {
        "alpha": ServiceState.RESTORED,
        "beta": ServiceState.RESTORED,
        "gamma": ServiceState.UNTOUCHED,
    }
    after = {name: (await a.read(name)).state for name, a in actuators.items()}
    assert after == before
    await actuators["alpha"]._set_pair(100, 0)  # type: ignore[attr-defined]


async def test_a_good_rollout_ends_with_every_backend_on_the_canary(
    client: Client, haproxy: HaproxyServer, rollout_id: str
) -> None:
    result = await (await start(client, _plan(haproxy, fail_on=None), rollout_id)).result()
    assert result.phase is Phase.SUCCEEDED
    for name in SERVICES:
        exposure = await for_config(haproxy_config(haproxy, name)).read(name)
        assert exposure.weight == 100
        await for_config(haproxy_config(haproxy, name))._set_pair(100, 0)  # type: ignore[attr-defined]


async def test_weights_reset_behind_the_rollouts_back_hold_it_until_abort(
    client: Client, haproxy: HaproxyServer, rollout_id: str
) -> None:
    from shiprail.workflows.rollout import RolloutWorkflow
    from tests.workflow.helpers import control, wait_status

    plan = _plan(haproxy, fail_on=None, bake="4s")
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING)
    alpha = for_config(haproxy_config(haproxy, "alpha"))
    await alpha._set_pair(100, 0)  # type: ignore[attr-defined]  # what a reload does
    held = await wait_status(handle, lambda s: s.phase is Phase.PAUSED, what="held for drift", timeout=30)
    assert held.services[0].state is ServiceState.DRIFTED
    assert "reload" in held.services[0].note
    await handle.execute_update(RolloutWorkflow.abort, control(reason="router reloaded"))
    assert (await handle.result()).phase is Phase.ROLLED_BACK
    assert (await alpha.read("alpha")).state == {
        "stable": 100,
        "canary": 0,
        "stable_initial": 100,
        "canary_initial": 0,
    }
