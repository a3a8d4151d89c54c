"""Dependencies failing mid-rollout, on the real dev server: Prometheus down, hanging, or
answering NaN or nothing; an actuator that hangs. None of them ever promotes a step, and
every rollout ends in a terminal phase that names what went wrong."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import Client

from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.status import Phase
from tests.workflow.helpers import make_plan, start

pytestmark = pytest.mark.usefixtures("worker")


def _gate(query: str) -> dict[str, Any]:
    return {"type": "threshold", "query": query, "max": 1, "inconclusive_limit": 1}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers: a hung Prometheus."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


async def _rollout(
    client: Client, actuator: ActuatorServer, rollout_id: str, prometheus_url: str, query: str
) -> Any:
    actuator.store.add("a", "1.0")
    before = dict(actuator.store.exposures)
    plan = make_plan(
        actuator.url,
        [{"name": "a"}],
        prometheus={"url": prometheus_url, "timeout": "1s"},
        gates={"g": _gate(query)},
        defaults={"steps": [10, 50, 100], "bake": "2s", "interval": "1s", "gates": ["g"]},
    )
    result = await (await start(client, plan, rollout_id)).result()
    weights = [c.weight for c in actuator.store.puts() if c.service == "a"]
    return result, weights, before


def _assert_never_promoted(
    result: Any, weights: list[float | None], before: Any, actuator: ActuatorServer
) -> None:
    assert result.phase is Phase.ROLLED_BACK, result.reason
    assert weights[0] == 10.0 and 50.0 not in weights and 100.0 not in weights, weights
    assert actuator.store.exposures == before  # restored exactly


async def test_prometheus_down_fails_closed(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    result, weights, before = await _rollout(
        client, actuator, rollout_id, f"http://127.0.0.1:{_closed_port()}", "vector(0)"
    )
    _assert_never_promoted(result, weights, before, actuator)
    assert "failing closed" in result.reason and "inconclusive" in result.reason, result.reason


async def test_a_hanging_prometheus_times_out_and_fails_closed(
    client: Client, actuator: ActuatorServer, rollout_id: str, silent_server: str
) -> None:
    result, weights, before = await _rollout(client, actuator, rollout_id, silent_server, "vector(0)")
    _assert_never_promoted(result, weights, before, actuator)
    assert "failing closed" in result.reason, result.reason


@pytest.mark.parametrize(
    ("query", "said"), [("vector(0) / 0", "NaN"), ('absent_metric_shiprail_test{job="none"}', "no data")]
)
async def test_nan_or_an_empty_answer_is_never_a_pass(
    client: Client,
    actuator: ActuatorServer,
    prometheus: PrometheusServer,
    rollout_id: str,
    query: str,
    said: str,
) -> None:
    result, weights, before = await _rollout(client, actuator, rollout_id, prometheus.url, query)
    _assert_never_promoted(result, weights, before, actuator)
    assert "failing closed" in result.reason, result.reason


async def test_a_hanging_actuator_never_leaves_a_service_half_rolled_without_saying_so(
    client: Client, rollout_id: str
) -> None:
    slow = ActuatorServer(latency=4.0)
    slow.start()
    try:
        slow.store.add("a", "1.0")
        plan = make_plan(
            slow.url, [{"name": "a", "actuator": {"type": "http", "url": slow.url, "timeout": "1s"}}]
        )
        result = await (await start(client, plan, rollout_id)).result()
    finally:
        slow.stop()
    assert result.phase in (Phase.ROLLED_BACK, Phase.ROLLBACK_FAILED, Phase.FAILED), result.reason
    assert "timed out" in result.reason.lower() or "timeout" in result.reason.lower(), result.reason
    assert all(c.weight != 50.0 for c in slow.store.puts())  # never promoted past its first step
    if result.phase is Phase.ROLLBACK_FAILED:
        assert result.unrestored == ["a"]  # said so


async def test_a_flag_platform_that_is_down_fails_closed(
    client: Client, rollout_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Unleash admin API unreachable: nothing is changed, and the rollout says why."""
    monkeypatch.setenv("SHIPRAIL_TEST_UNLEASH_TOKEN", "token-never-sent")
    down = f"http://127.0.0.1:{_closed_port()}"
    flag = {
        "type": "unleash",
        "url": down,
        "token": "env:SHIPRAIL_TEST_UNLEASH_TOKEN",
        "project": "default",
        "environment": "production",
        "feature": "pricing",
        "timeout": "1s",
    }
    plan = make_plan(down, [{"name": "pricing", "actuator": flag}])
    result = await (await start(client, plan, rollout_id)).result()
    assert result.phase in (Phase.FAILED, Phase.ROLLED_BACK), result.reason
    assert result.phase is not Phase.SUCCEEDED and not result.unrestored, result.reason
    assert "pricing" in result.reason and (
        "connect" in result.reason.lower() or "unreachable" in result.reason.lower()
    ), result.reason
    assert "token-never-sent" not in result.reason
