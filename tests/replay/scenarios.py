"""Representative rollouts whose histories guard replay safety.

Each scenario drives one real rollout against the dev server, an in-process actuator and
real Prometheus, and returns its handle. `record.py` stores their histories under
`histories/`; `test_replay.py` replays those files and fresh runs of the same scenarios.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle

from shiprail.demo.actuator import ActuatorServer
from shiprail.plan import RolloutPlan
from shiprail.status import Phase, ServiceState
from shiprail.workflows.rollout import RolloutWorkflow
from tests.workflow.helpers import WEIGHT_GATE, control, make_plan, start, wait_status

# The value only ever lives in the worker's environment; the plan names the variable.
SECRET_ENV = "SHIPRAIL_REPLAY_TOKEN"
SECRET_VALUE = "Bearer s3cr3t-never-in-history-7f2c"


@dataclass
class Rig:
    client: Client
    prometheus_url: str


Handle = WorkflowHandle[Any, Any]
Scenario = Callable[[Rig, str], Awaitable[tuple[Handle, Phase]]]


def _names(rollout_id: str, *services: str) -> list[str]:
    # Service locks are global: unique names let scenarios run side by side.
    return [f"{s}-{rollout_id[-6:]}" for s in services]


def _chain(url: str, names: list[str], **service: Any) -> list[dict[str, Any]]:
    return [
        {"name": n, **({"depends_on": [names[i - 1]]} if i else {}), **service} for i, n in enumerate(names)
    ]


@contextmanager
def _actuator(*services: str, **kwargs: Any) -> Iterator[ActuatorServer]:
    server = ActuatorServer(**kwargs).start()
    for name in services:
        server.store.add(name, "1.0")
    try:
        yield server
    finally:
        server.stop()


async def success(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    names = _names(rollout_id, "payments", "checkout")
    with _actuator(*names) as actuator:
        plan = make_plan(
            actuator.url,
            _chain(actuator.url, names, gates=["weight"]),
            prometheus={"url": rig.prometheus_url},
            gates={"weight": {**WEIGHT_GATE, "max": 100}},
            defaults={"steps": [50, 100], "bake": "1s", "interval": "1s"},
        )
        handle = await start(rig.client, plan, rollout_id)
        await handle.result()
        return handle, Phase.SUCCEEDED


def _failing_pair(rig: Rig, url: str, names: list[str]) -> RolloutPlan:
    """names[1] depends on names[0] and fails its gate above 20 %."""
    return make_plan(
        url,
        [{"name": names[0]}, {"name": names[1], "depends_on": [names[0]], "gates": ["weight"]}],
        prometheus={"url": rig.prometheus_url},
        gates={"weight": WEIGHT_GATE},
        defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s"},
    )


async def rollback(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    names = _names(rollout_id, "payments", "checkout")
    with _actuator(*names) as actuator:
        handle = await start(rig.client, _failing_pair(rig, actuator.url, names), rollout_id)
        await handle.result()
        return handle, Phase.ROLLED_BACK


async def rollback_beside_a_bake(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    """One service fails its gate while another of its wave is still baking: the rollback
    starts before that bake has been called off."""
    names = _names(rollout_id, "payments", "search")
    with _actuator(*names) as actuator:
        plan = make_plan(
            actuator.url,
            [{"name": names[0], "gates": ["weight"]}, {"name": names[1], "bake": "60s"}],
            prometheus={"url": rig.prometheus_url},
            gates={"weight": WEIGHT_GATE},
            defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s"},
        )
        handle = await start(rig.client, plan, rollout_id)
        await handle.result()
        return handle, Phase.ROLLED_BACK


async def rollback_retried_restore(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    """A wave of two restored together; one's attempt fails and is retried as an activity."""
    names = _names(rollout_id, "payments", "ledger", "checkout")
    with _actuator(*names) as actuator:
        plan = make_plan(
            actuator.url,
            [
                {"name": names[0]},
                {"name": names[1]},
                {"name": names[2], "depends_on": names[:2], "gates": ["weight"]},
            ],
            prometheus={"url": rig.prometheus_url},
            gates={"weight": WEIGHT_GATE},
            defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s"},
        )
        handle = await start(rig.client, plan, rollout_id)
        # payments is at 100 % before checkout starts: its next PUT is the restore.
        await wait_status(handle, lambda s: s.services[2].step >= 1, what="checkout rolling")
        actuator.store.fail(names[0], "PUT", status=503, times=1)
        await handle.result()
        return handle, Phase.ROLLED_BACK


async def rollback_slow_actuator(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    """Restores slower than the local activity's budget: the first wave in the worker, the
    next through an ordinary activity."""
    names = _names(rollout_id, "payments", "checkout")
    with _actuator(*names) as actuator:
        handle = await start(rig.client, _failing_pair(rig, actuator.url, names), rollout_id)
        await wait_status(handle, lambda s: s.services[1].step >= 1, what="checkout rolling")
        actuator.latency = 1.2
        await handle.result()
        return handle, Phase.ROLLED_BACK


async def pause_resume(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    names = _names(rollout_id, "inventory")
    with _actuator(*names) as actuator:
        plan = make_plan(
            actuator.url, [{"name": names[0]}], defaults={"steps": [10, 100], "bake": "2s", "interval": "1s"}
        )
        handle = await start(rig.client, plan, rollout_id)
        await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING, what="baking")
        await handle.execute_update(RolloutWorkflow.pause, control(reason="look at dashboards"))
        await wait_status(handle, lambda s: s.services[0].state is ServiceState.HOLDING, what="holding")
        await handle.execute_update(RolloutWorkflow.resume, control(reason="all clear"))
        await handle.result()
        return handle, Phase.SUCCEEDED


async def abort(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    names = _names(rollout_id, "payments", "checkout")
    with _actuator(*names) as actuator:
        plan = make_plan(
            actuator.url,
            _chain(actuator.url, names),
            defaults={"steps": [10, 50, 100], "bake": "3s", "interval": "1s"},
        )
        handle = await start(rig.client, plan, rollout_id)
        await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING, what="baking")
        await handle.execute_update(RolloutWorkflow.abort, control(reason="wrong build"))
        await handle.result()
        return handle, Phase.ROLLED_BACK


async def approval_lockstep(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    names = _names(rollout_id, "db", "api", "jobs")
    with _actuator(*names) as actuator:
        services = [
            {"name": names[0]},
            {"name": names[1], "depends_on": [names[0]]},
            {"name": names[2], "depends_on": [names[0]]},
        ]
        plan = make_plan(
            actuator.url,
            services,
            lockstep=True,
            defaults={"steps": [50, 100], "bake": "1s", "interval": "1s", "approval": "before_full"},
        )
        handle = await start(rig.client, plan, rollout_id)
        for _ in range(2):  # the first wave, then the lockstep wave of two
            await wait_status(handle, lambda s: s.phase is Phase.AWAITING_APPROVAL, what="approval")
            await handle.execute_update(RolloutWorkflow.approve, control(reason="ok"))
        await handle.result()
        return handle, Phase.SUCCEEDED


async def secret_header(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    names = _names(rollout_id, "ledger")
    os.environ[SECRET_ENV] = SECRET_VALUE  # the in-process worker resolves it from here
    with _actuator(*names, required_headers={"Authorization": SECRET_VALUE}) as actuator:
        plan = make_plan(
            "",
            [
                {
                    "name": names[0],
                    "actuator": {
                        "type": "http",
                        "url": actuator.url,
                        "headers": {"Authorization": f"env:{SECRET_ENV}"},
                    },
                }
            ],
            defaults={"steps": [100], "bake": "1s", "interval": "1s"},
        )
        handle = await start(rig.client, plan, rollout_id)
        await handle.result()
        assert [c.weight for c in actuator.store.puts()] == [100.0], "the secret header was not accepted"
        return handle, Phase.SUCCEEDED


async def drift_resume(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    """The weight is changed by hand while a step bakes: held for drift (and notified),
    then resumed, accepting it."""
    from tests.workflow.test_notify import Receiver

    names = _names(rollout_id, "search")
    receiver = Receiver()
    try:
        with _actuator(*names) as actuator:
            plan = make_plan(
                actuator.url,
                [{"name": names[0]}],
                defaults={"steps": [10, 100], "bake": "3s", "interval": "1s"},
                notify=[{"type": "webhook", "url": receiver.url, "events": ["drift", "rollback"]}],
            )
            handle = await start(rig.client, plan, rollout_id)
            await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING, what="baking")
            found = actuator.store.exposures[names[0]]
            actuator.store.exposures[names[0]] = found.model_copy(update={"weight": 40.0})
            await wait_status(handle, lambda s: s.services[0].state is ServiceState.DRIFTED, what="drifted")
            await handle.execute_update(RolloutWorkflow.resume, control(reason="that was us"))
            await handle.result()
            return handle, Phase.SUCCEEDED
    finally:
        receiver.server.shutdown()


async def window_override(rig: Rig, rollout_id: str) -> tuple[Handle, Phase]:
    """Started inside a freeze: waits for its window, then is overridden."""
    from datetime import UTC, datetime, timedelta

    names = _names(rollout_id, "billing")
    now = datetime.now(UTC)
    freeze = {
        "from": f"{now - timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}",
        "to": f"{now + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}",
        "reason": "replay freeze",
    }
    with _actuator(*names) as actuator:
        plan = make_plan(
            actuator.url,
            [{"name": names[0]}],
            defaults={"steps": [50, 100], "bake": "1s", "interval": "1s"},
            windows={"timezone": "UTC", "deny": [freeze]},
        )
        handle = await start(rig.client, plan, rollout_id)
        await wait_status(handle, lambda s: s.phase is Phase.WAITING_WINDOW, what="waiting for the window")
        await handle.execute_update(RolloutWorkflow.override, control(reason="hotfix"))
        await handle.result()
        return handle, Phase.SUCCEEDED


SCENARIOS: dict[str, Scenario] = {
    "success": success,
    "rollback": rollback,
    "rollback_beside_a_bake": rollback_beside_a_bake,
    "rollback_retried_restore": rollback_retried_restore,
    "rollback_slow_actuator": rollback_slow_actuator,
    "pause_resume": pause_resume,
    "abort": abort,
    "approval_lockstep": approval_lockstep,
    "secret_header": secret_header,
    "drift_resume": drift_resume,
    "window_override": window_override,
}


def new_id(name: str) -> str:
    return f"replay-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
