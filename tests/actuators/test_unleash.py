"""The Unleash actuator against the real Unleash server on PostgreSQL, proven with the
real Python SDK: for 10,000 users the set enabled is the same in every service at every
step, only grows, and after a restore is exactly the set before; strategies come back
byte for byte."""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
import uuid
from typing import Any

import pytest
import requests
import yaml
from UnleashClient import AsyncUnleashClient
from UnleashClient.cache import FileCache

from shiprail.actuators import ExposureChange, PermanentActuatorError, for_config
from shiprail.devstack.unleash import UnleashServer
from shiprail.plan.actuators import UnleashActuator as UnleashConfig

pytestmark = pytest.mark.xdist_group("unleash")

USERS = [f"user-{n}" for n in range(10_000)]


def config(server: UnleashServer, feature: str, **fields: Any) -> UnleashConfig:
    return UnleashConfig.model_validate(
        {
            "type": "unleash",
            "url": server.url,
            "token": "env:UNLEASH_ADMIN_TOKEN",
            "environment": "development",
            "feature": feature,
            "bucket_key": "new-pricing",
            "client_token": "env:UNLEASH_CLIENT_TOKEN",
            **fields,
        }
    )


def step(feature: str, weight: float) -> ExposureChange:
    return ExposureChange(
        service=feature, version="on", weight=weight, rollout_id="r", idempotency_key=f"{weight}"
    )


def admin(server: UnleashServer, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method,
        f"{server.url}/api/admin/projects/default/features{path}",
        json=body,
        headers={"Authorization": server.admin_token},
        timeout=10,
    )
    response.raise_for_status()
    return response.json() if response.text else None


async def sdk_enabled(
    server: UnleashServer, features: list[str], expected: dict[str, tuple[bool, str | None]] | None = None
) -> dict[str, frozenset[str]]:
    """What the real SDK, freshly connected, enables for each user, once the SDK is served
    each flag as `expected` (enabled, rollout of shiprail's strategy): Unleash answers SDKs
    from a cache per query that follows a change about a second later."""
    deadline = time.monotonic() + 30
    while True:
        client = AsyncUnleashClient(
            url=f"{server.url}/api",
            app_name=f"proof-{uuid.uuid4().hex[:6]}",
            environment="development",
            custom_headers={"Authorization": server.backend_token},
            refresh_interval=60,
            disable_metrics=True,
            disable_registration=True,
            # A cache of its own: the default one on disk would hand this client what an
            # earlier client fetched.
            cache=FileCache(f"proof-{uuid.uuid4().hex}", directory=tempfile.mkdtemp(prefix="unleash-sdk-")),
        )
        await client.initialize_client()
        try:
            seen = _served(client)
            if expected is None or all(seen.get(f, (False, None)) == want for f, want in expected.items()):
                return {
                    f: frozenset(u for u in USERS if client.is_enabled(f, {"userId": u})) for f in features
                }
        finally:
            await client.destroy()
        if time.monotonic() > deadline:
            raise AssertionError(f"the SDK is still served {seen}, expected {expected}")
        await asyncio.sleep(0.2)


def _served(client: AsyncUnleashClient) -> dict[str, tuple[bool, str | None]]:
    state = json.loads(client._engine.get_state())  # the SDK's own copy of the flags
    seen = {}
    for feature in state["features"]:
        ours = [s for s in feature["strategies"] if s.get("parameters", {}).get("groupId") == "new-pricing"]
        seen[feature["name"]] = (feature["enabled"], ours[0]["parameters"]["rollout"] if ours else None)
    return seen


async def test_three_flags_enable_the_same_growing_set_and_restore_exactly(unleash: UnleashServer) -> None:
    tag = uuid.uuid4().hex[:6]
    features = [f"{name}-{tag}" for name in ("checkout", "payments", "search")]
    # Before: one flag is absent, one is on with a hand-written 20 % rollout of another
    # group, one exists switched off, with a strategy for two users.
    admin(unleash, "POST", "", {"name": features[1], "type": "release"})
    env = f"/{features[1]}/environments/development"
    admin(
        unleash,
        "POST",
        f"{env}/strategies",
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": "20", "stickiness": "userId", "groupId": "old"},
        },
    )
    admin(unleash, "POST", f"{env}/on")
    admin(unleash, "POST", "", {"name": features[2], "type": "release"})
    admin(
        unleash,
        "POST",
        f"/{features[2]}/environments/development/strategies",
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": "100", "stickiness": "default", "groupId": "vip"},
            "constraints": [{"contextName": "userId", "operator": "IN", "values": ["user-1", "user-2"]}],
        },
    )
    before = await sdk_enabled(unleash, features)
    strategies_before = {f: _strategies(unleash, f) for f in features[1:]}
    actuators = {f: for_config(config(unleash, f)) for f in features}
    originals = {f: await a.read(f) for f, a in actuators.items()}
    assert originals[features[1]].weight == 0  # a rollout of another group is not ours to count
    previous: frozenset[str] = frozenset()
    for weight in (1, 5, 25, 50, 100):
        await asyncio.gather(*(a.apply(step(f, weight)) for f, a in actuators.items()))
        assert [(await a.read(f)).weight for f, a in actuators.items()] == [weight] * 3
        sets = await sdk_enabled(unleash, features, {f: (True, str(weight)) for f in features})
        assert len(set(sets.values())) == 1, (
            f"services disagree at {weight}%: { {f: len(v) for f, v in sets.items()} }"
        )
        chosen = sets[features[0]]
        assert previous <= chosen, f"users dropped out rising to {weight}%"
        p = weight / 100
        assert abs(len(chosen) - len(USERS) * p) <= 4 * math.sqrt(len(USERS) * p * (1 - p)) + 1e-9
        previous = chosen
    await asyncio.gather(*(a.restore(step(f, 0), originals[f]) for f, a in actuators.items()))
    restored = {features[0]: (False, None), features[1]: (True, None), features[2]: (False, None)}
    assert await sdk_enabled(unleash, features, restored) == before
    assert {f: _strategies(unleash, f) for f in features[1:]} == strategies_before


def _strategies(server: UnleashServer, feature: str) -> list[dict[str, Any]]:
    return admin(server, "GET", f"/{feature}/environments/development/strategies")


async def test_the_environment_is_never_switched_on_before_the_strategy_exists(
    unleash: UnleashServer,
) -> None:
    feature = f"fresh-{uuid.uuid4().hex[:6]}"
    actuator = for_config(config(unleash, feature))
    await actuator.apply(step(feature, 5))
    share = len((await sdk_enabled(unleash, [feature], {feature: (True, "5")}))[feature]) / len(USERS)
    assert share < 0.1  # 5 %, never the 100 % of an enabled environment without a strategy


async def test_a_wrong_token_and_an_unknown_environment_are_permanent(
    unleash: UnleashServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feature = f"x-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("WRONG_TOKEN", "*:*.not-a-token")
    with pytest.raises(PermanentActuatorError, match="HTTP 401"):
        await for_config(config(unleash, feature, token="env:WRONG_TOKEN")).apply(step(feature, 5))
    admin(unleash, "POST", "", {"name": feature, "type": "release"})
    with pytest.raises(PermanentActuatorError, match="no environment 'staging'"):
        await for_config(config(unleash, feature, environment="staging")).read(feature)


def test_a_literal_token_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="literal token would be stored"):
        UnleashConfig.model_validate(
            {"type": "unleash", "url": "http://u", "token": "*:*.abc", "feature": "f"}
        )


@pytest.mark.usefixtures("worker")
async def test_a_failing_second_wave_restores_every_touched_flag(
    client: Any, unleash: UnleashServer, rollout_id: str
) -> None:
    from shiprail.plan import parse_plan
    from shiprail.status import Phase, ServiceState
    from tests.helpers import plan_document
    from tests.workflow.helpers import WEIGHT_GATE, start

    tag = uuid.uuid4().hex[:6]
    names = ("payments", "checkout", "frontend")
    services: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        block = config(unleash, f"{name}-{tag}").model_dump(exclude_none=True, mode="json")
        block.pop("bucket_key")  # the plan's name is the shared groupId
        service: dict[str, Any] = {"name": f"{name}-{tag}", "actuator": block}
        if index:
            service["depends_on"] = [f"{names[index - 1]}-{tag}"]
        if name == "checkout":
            service["gates"] = ["weight"]
        services.append(service)
    plan = parse_plan(
        yaml.safe_dump(
            plan_document(
                "unused",
                services,
                metadata={"name": "new-pricing"},
                defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s", "gates": []},
                gates={"weight": WEIGHT_GATE},
            )
        )
    )
    admin(unleash, "POST", "", {"name": f"payments-{tag}", "type": "release"})
    before = _strategies(unleash, f"payments-{tag}")
    handle = await start(client, plan, rollout_id)
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK
    from shiprail.workflows.rollout import RolloutWorkflow

    # Every step's bake started once the client API served it to SDKs.
    served = [e.message for e in await handle.query(RolloutWorkflow.audit) if e.kind == "propagation"]
    assert served and all(" served after " in m for m in served)
    assert [s.state for s in result.services] == [
        ServiceState.RESTORED,
        ServiceState.RESTORED,
        ServiceState.UNTOUCHED,
    ]
    assert _strategies(unleash, f"payments-{tag}") == before
    assert not _environment(unleash, f"payments-{tag}")["enabled"]
    assert _strategies(unleash, f"checkout-{tag}") == []


def _environment(server: UnleashServer, feature: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e for e in admin(server, "GET", f"/{feature}")["environments"] if e["name"] == "development"
    )
    return found
