"""The HTTP webhook actuator against the demo router's real HTTP server."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shiprail.activities.actuation import set_exposure_waves, set_exposures
from shiprail.activities.types import ExposureWaves, SetExposure
from shiprail.actuators import ActuatorError, ExposureChange, PermanentActuatorError, for_config
from shiprail.demo.actuator import ActuatorServer
from shiprail.plan.actuators import HttpActuator


@pytest.fixture
def router() -> Iterator[ActuatorServer]:
    server = ActuatorServer().start()
    server.store.add("payments", "1.0")
    yield server
    server.stop()


def _change(weight: float, key: str) -> ExposureChange:
    return ExposureChange(
        service="payments", version="2.0", weight=weight, rollout_id="r", idempotency_key=key
    )


async def test_a_stopped_router_fails_the_call(
    router: ActuatorServer,
) -> None:
    actuator = for_config(HttpActuator(type="http", url=router.url))
    await actuator.apply(_change(10, "k1"))
    router.stop()
    with pytest.raises(ActuatorError):
        await actuator.apply(_change(50, "k2"))


async def test_4xx_is_permanent_and_5xx_transient(router: ActuatorServer) -> None:
    actuator = for_config(HttpActuator(type="http", url=router.url))
    router.store.fail("payments", "PUT", status=503)
    with pytest.raises(ActuatorError) as transient:
        await actuator.apply(_change(10, "k1"))
    assert not isinstance(transient.value, PermanentActuatorError) and "HTTP 503" in str(transient.value)
    router.store.fail("payments", "PUT", status=409)
    with pytest.raises(PermanentActuatorError, match="HTTP 409"):
        await actuator.apply(_change(10, "k1"))


class _ImportWatch(importlib.abc.MetaPathFinder):
    """Records every module Python goes looking for (one that imports finds in sys.modules is not looked for)."""

    def __init__(self) -> None:
        self.sought: list[str] = []

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        self.sought.append(name)


async def test_a_call_searches_for_no_module(router: ActuatorServer) -> None:
    # A client that imports a module on every request pays for it on every restore: httpcore
    # did, for an optional module that was missing, and a failed import is not cached, so
    # each call searched sys.path again (about 1 ms per restore).
    actuator = for_config(HttpActuator(type="http", url=router.url))
    await actuator.apply(_change(10, "k0"))  # the first call may import what it needs
    watch = _ImportWatch()
    sys.meta_path.insert(0, watch)
    try:
        for weight in (20, 50, 100):
            await actuator.apply(_change(weight, f"k{weight}"))
    finally:
        sys.meta_path.remove(watch)
    assert watch.sought == []


async def test_calls_reuse_one_kept_alive_connection(router: ActuatorServer) -> None:
    # A restore must not pay a TCP (and TLS) handshake on the rollback's critical path.
    actuator = for_config(HttpActuator(type="http", url=router.url))
    for weight in (10, 50, 100):
        await actuator.apply(_change(weight, f"k{weight}"))
    assert (await actuator.read("payments")).weight == 100
    assert router.connections_accepted == 1


async def test_a_batch_reports_each_change_without_losing_the_others(router: ActuatorServer) -> None:
    # A rollback wave: one refusal and one transient failure must not hide the restore that worked.
    for name in ("ledger", "checkout"):
        router.store.add(name, "1.0")
    router.store.fail("ledger", "PUT", status=403)
    router.store.fail("checkout", "PUT", status=503)
    outcomes = await set_exposures(_restores(router, "payments", "ledger", "checkout"))
    assert [(o.service, o.rejected) for o in outcomes] == [
        ("payments", False),
        ("ledger", True),
        ("checkout", False),
    ]
    assert outcomes[0].error is None
    assert "HTTP 403" in str(outcomes[1].error) and "HTTP 503" in str(outcomes[2].error)
    assert (
        router.store.exposures["payments"].weight == 0
        and router.store.exposures["payments"].stable_version == "1.0"
    )


def _restores(router: ActuatorServer, *services: str) -> list[SetExposure]:
    config = HttpActuator(type="http", url=router.url)
    return [
        SetExposure(
            service=name,
            actuator=config,
            version="1.0",
            weight=0,
            rollout_id="r",
            idempotency_key=f"r/{name}",
        )
        for name in services
    ]


def _waves(router: ActuatorServer, *waves: list[str], budget: float = 60) -> ExposureWaves:
    for name in (n for wave in waves for n in wave):
        router.store.add(name, "1.0", canary_version="2.0", weight=50)
    return ExposureWaves(waves=[_restores(router, *wave) for wave in waves], budget=timedelta(seconds=budget))


def _put_order(router: ActuatorServer) -> list[str]:
    return [c.service for c in router.store.calls if c.method == "PUT"]


async def test_waves_are_applied_in_order(router: ActuatorServer) -> None:
    # Consumers first: no change of a wave may reach the actuator before the wave before it is answered.
    applied = await set_exposure_waves(_waves(router, ["c1", "c2"], ["b1", "b2", "b3"], ["a"]))
    assert [[(o.service, o.error) for o in wave] for wave in applied] == [
        [("c1", None), ("c2", None)],
        [("b1", None), ("b2", None), ("b3", None)],
        [("a", None)],
    ]
    order = _put_order(router)
    assert (
        sorted(order[:2]) == ["c1", "c2"] and sorted(order[2:5]) == ["b1", "b2", "b3"] and order[5:] == ["a"]
    )
    assert all(router.store.exposures[n].canary_version is None for n in ("c1", "b3", "a"))


async def test_no_wave_starts_after_one_with_a_failure(router: ActuatorServer) -> None:
    # The workflow retries the failed change first: the next wave must wait for it.
    request = _waves(router, ["c"], ["b1", "b2"], ["a"])
    router.store.fail("b2", "PUT", status=503)
    applied = await set_exposure_waves(request)
    assert [[o.service for o in wave] for wave in applied] == [["c"], ["b1", "b2"]]
    assert applied[1][0].error is None and "HTTP 503" in str(applied[1][1].error)
    assert "a" not in _put_order(router)


async def test_no_wave_starts_once_the_budget_has_passed(router: ActuatorServer) -> None:
    applied = await set_exposure_waves(_waves(router, ["c"], ["b"], ["a"], budget=0))
    assert [[o.service for o in wave] for wave in applied] == [["c"]]
    assert _put_order(router) == ["c"]
