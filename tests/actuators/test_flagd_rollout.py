"""Rollouts through the flagd actuator on the real dev server: three services' flags move
together, and a gate failing on the second wave puts every touched flag back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client

from shiprail.plan import RolloutPlan
from shiprail.status import Phase, ServiceState
from tests.actuators.conftest import chain_plan
from tests.actuators.test_flagd import USERS, enabled
from tests.workflow.helpers import start

pytestmark = pytest.mark.usefixtures("worker")

SERVICES = ("payments", "checkout", "frontend")


def flag_plan(path: Path, fail_on: str | None) -> RolloutPlan:
    blocks = {name: {"type": "flagd", "path": str(path), "flag": f"{name}-new-pricing"} for name in SERVICES}
    return chain_plan(blocks, fail_on, propagation="1s")


async def test_a_failing_second_wave_restores_every_touched_flag_exactly(
    client: Client, tmp_path: Path, rollout_id: str
) -> None:
    path = tmp_path / "flags.json"
    hand_written = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    path.write_text(json.dumps({"flags": {"payments-new-pricing": hand_written}}))
    result = await (await start(client, flag_plan(path, fail_on="checkout"), rollout_id)).result()
    assert result.phase is Phase.ROLLED_BACK
    assert {s.name: s.state for s in result.services} == {
        "payments": ServiceState.RESTORED,
        "checkout": ServiceState.RESTORED,
        "frontend": ServiceState.UNTOUCHED,
    }
    assert json.loads(path.read_text())["flags"] == {"payments-new-pricing": hand_written}


async def test_a_good_rollout_ends_with_every_flag_on_for_everyone(
    client: Client, tmp_path: Path, rollout_id: str
) -> None:
    path = tmp_path / "flags.json"
    handle = await start(client, flag_plan(path, fail_on=None), rollout_id)
    result = await handle.result()
    assert result.phase is Phase.SUCCEEDED
    # flagd cannot be asked when it has read the file: each step waited `propagation`.
    from shiprail.workflows.rollout import RolloutWorkflow

    waits = [e.message for e in await handle.query(RolloutWorkflow.audit) if e.kind == "propagation"]
    assert waits and all(m.endswith("waited propagation 1s") for m in waits)
    assert len(waits) == 3 * len(SERVICES)
    assert all(enabled(path, f"{name}-new-pricing") == frozenset(USERS) for name in SERVICES)
