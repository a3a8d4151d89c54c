"""The HAProxy actuator against the real `haproxy` fronting two real HTTP backends."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import requests

from shiprail.actuators import ExposureChange, PermanentActuatorError, for_config
from shiprail.actuators.haproxy import reset_by_reload
from shiprail.devstack.haproxy import HaproxyServer
from shiprail.plan.actuators import HaproxyActuator as HaproxyConfig
from tests.actuators.conftest import haproxy_config

REQUESTS = 800


def change(service: str, weight: float) -> ExposureChange:
    return ExposureChange(
        service=service, version="2.0", weight=weight, rollout_id="t", idempotency_key=f"k{weight}"
    )


def canary_share(server: HaproxyServer, backend: str) -> int:
    answers: Counter[str] = Counter()
    for _ in range(REQUESTS):
        # A new connection each time: every request is its own draw.
        answers[requests.get(server.url(backend), timeout=5, headers={"Connection": "close"}).text] += 1
    return answers[f"{backend}-canary"]


@pytest.mark.parametrize("tcp", [False, True], ids=["unix-socket", "tcp"])
async def test_weights_move_traffic_within_a_binomial_bound_and_restore_exactly(
    haproxy: HaproxyServer, tcp: bool
) -> None:
    backend = "alpha" if not tcp else "beta"
    actuator = for_config(haproxy_config(haproxy, backend, tcp=tcp))
    original = await actuator.read(backend)
    assert original.weight == 0 and original.canary_version is None
    assert original.state == {"stable": 100, "canary": 0, "stable_initial": 100, "canary_initial": 0}
    for weight in (10, 50, 100):
        await actuator.apply(change(backend, weight))
        seen = await actuator.read(backend)
        assert seen.weight == weight
        k, p = canary_share(haproxy, backend), weight / 100
        # Four standard deviations: a false alarm about once in 15,000 runs.
        assert abs(k - REQUESTS * p) <= 4 * math.sqrt(REQUESTS * p * (1 - p)) + 1e-9, (weight, k)
    await actuator.restore(change(backend, 0), original)
    assert (await actuator.read(backend)).state == original.state
    assert canary_share(haproxy, backend) == 0


async def test_a_restore_puts_back_weights_that_were_not_a_round_split(haproxy: HaproxyServer) -> None:
    actuator = for_config(haproxy_config(haproxy, "gamma"))
    await actuator.apply(change("gamma", 0))
    # Someone had left odd weights: 37 stable, 3 canary.
    await actuator._set_pair(37, 3)  # type: ignore[attr-defined]
    original = await actuator.read("gamma")
    assert original.weight == 7.5
    await actuator.apply(change("gamma", 50))
    await actuator.restore(change("gamma", 7.5), original)
    assert (await actuator.read("gamma")).state == original.state
    await actuator._set_pair(100, 0)  # type: ignore[attr-defined]


async def test_unknown_backends_and_servers_are_permanent_errors(haproxy: HaproxyServer) -> None:
    missing = for_config(haproxy_config(haproxy, "nope"))
    with pytest.raises(PermanentActuatorError, match="No such"):
        await missing.read("nope")
    config = HaproxyConfig.model_validate(
        {
            "type": "haproxy",
            "socket": str(haproxy.socket),
            "backend": "alpha",
            "stable": "stable",
            "canary": "blue",
        }
    )
    with pytest.raises(PermanentActuatorError, match="No such"):
        await for_config(config).read("alpha")


async def test_an_unreachable_runtime_api_is_transient(tmp_path: object) -> None:
    from shiprail.actuators import ActuatorError

    config = HaproxyConfig.model_validate(
        {"type": "haproxy", "address": "127.0.0.1:1", "backend": "a", "stable": "s", "canary": "c"}
    )
    with pytest.raises(ActuatorError) as caught:
        await for_config(config).read("a")
    assert not isinstance(caught.value, PermanentActuatorError)


async def test_a_reload_that_reset_the_weights_is_recognised(haproxy: HaproxyServer) -> None:
    actuator = for_config(haproxy_config(haproxy, "alpha"))
    await actuator.apply(change("alpha", 25))
    assert not reset_by_reload(await actuator.read("alpha"), 25)
    await actuator.apply(change("alpha", 0))  # the configuration's weights, as after a reload
    assert reset_by_reload(await actuator.read("alpha"), 25)


def test_the_block_needs_exactly_one_endpoint() -> None:
    from pydantic import ValidationError

    base = {"type": "haproxy", "backend": "a", "stable": "s", "canary": "c"}
    with pytest.raises(ValidationError, match="exactly one"):
        HaproxyConfig.model_validate(base)
    with pytest.raises(ValidationError, match="exactly one"):
        HaproxyConfig.model_validate({**base, "socket": "/x", "address": "h:1"})
    with pytest.raises(ValidationError, match="is not host:port"):
        HaproxyConfig.model_validate({**base, "address": "nowhere"})
    with pytest.raises(ValidationError, match="two different servers"):
        HaproxyConfig.model_validate({**base, "socket": "/x", "canary": "s"})
