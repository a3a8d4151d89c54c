"""Rollouts through the flagd actuator on the real dev server: three services' flags move
together, and a gate failing on the second wave puts every touched flag back exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client

from shiprail.plan import RolloutPlan, parse_plan
from shiprail.status import Phase, ServiceState
from tests.actuators.test_flagd import USERS, enabled
from tests.helpers import plan_document
from tests.workflow.helpers import WEIGHT_GATE, start

pytestmark = pytest.mark.usefixtures("worker")

SERVICES = ("payments", "checkout", "frontend")


def flag_plan(path: Path, fail_on: str | None) -> RolloutPlan:
    services: list[dict[str, Any]] = []
    for index, name in enumerate(SERVICES):
        service: dict[str, Any] = {
            "name": name,
            "actuator": {"type": "flagd", "path": str(path), "flag": f"{name}-new-pricing"},
        }
        if index:
            service["depends_on"] = [SERVICES[index - 1]]
        if name == fail_on:
            service["gates"] = ["weight"]
        services.append(service)
    document = plan_document(
        "unused",
        services,
        metadata={"name": "new-pricing"},
        defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s", "gates": [], "propagation": "1s"},
        gates={"weight": WEIGHT_GATE},
    )
    return parse_plan(yaml.safe_dump(document))


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
