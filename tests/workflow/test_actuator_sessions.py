"""The actuators' pooled HTTP session lives as long as what uses it: a worker, a command."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client

from shiprail.actuators import for_config
from shiprail.actuators import http as http_actuator
from shiprail.cli.gates import stable_versions
from shiprail.demo.actuator import ActuatorServer
from shiprail.gates.dryrun import pick_services
from shiprail.plan import RolloutPlan
from shiprail.plan.actuators import HttpActuator
from shiprail.worker import running_worker
from tests.helpers import plan_document


async def test_the_worker_closes_the_pooled_session_when_it_stops(
    client: Client, actuator: ActuatorServer
) -> None:
    actuator.store.add("payments", "1.0")
    async with running_worker(client, task_queue=f"sessions-{uuid.uuid4().hex[:6]}"):
        # what an activity of this worker does: a call through the pooled session
        assert (await for_config(HttpActuator(type="http", url=actuator.url)).read("payments")).stable_version
        session = http_actuator._sessions[asyncio.get_running_loop()]
        assert not session.closed
    assert session.closed and asyncio.get_running_loop() not in http_actuator._sessions


def test_a_command_that_reads_an_actuator_closes_its_session_before_its_loop_ends(
    actuator: ActuatorServer,
) -> None:
    # `gates eval` reads each service's stable version from its actuator in an event loop
    # of its own. A session left open there keeps its connection, and aiohttp reports an
    # unclosed session once it is collected.
    actuator.store.add("payments", "1.0")
    document = plan_document(
        actuator.url,
        [{"name": "payments", "gates": ["up"]}],
        gates={"up": {"type": "threshold", "query": "up", "max": 1}},
    )
    services = pick_services(RolloutPlan.model_validate(document), [])
    assert stable_versions(services, None) == {"payments": "1.0"}
    left_open = [s for loop, s in http_actuator._sessions.items() if loop.is_closed() and not s.closed]
    assert left_open == []


def test_a_running_worker_says_a_called_off_activity_in_one_line(worker: object) -> None:
    import logging

    from shiprail.worker import ExpectedCancellation

    assert any(isinstance(f, ExpectedCancellation) for f in logging.getLogger("temporalio.activity").filters)
