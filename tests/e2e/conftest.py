"""The demo fleet, a Prometheus of its own scraping it, and the demo plan pointed at both.

Each test gets a fresh Prometheus: fleets of successive tests use the same service names
and versions, and a fresh TSDB keeps one test's series out of the next one's gates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shiprail.demo.fleet import Fleet
from shiprail.demo.scenarios import LOAD_RPS
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.plan import RolloutPlan, parse_plan
from shiprail.status import Exposure

DEMO_PLAN = Path(__file__).resolve().parents[2] / "examples" / "demo-plan.yaml"


@dataclass
class FleetRig:
    fleet: Fleet
    prometheus: PrometheusServer
    plan: RolloutPlan
    start: dict[str, Exposure]


def demo_plan(router_url: str, prometheus_url: str, text: str | None = None) -> RolloutPlan:
    text = text if text is not None else DEMO_PLAN.read_text()
    text = text.replace("http://127.0.0.1:8790/exposure", router_url)
    return parse_plan(text.replace("http://127.0.0.1:9190", prometheus_url), str(DEMO_PLAN))


@pytest.fixture
def fleet_rig(tmp_path: Path) -> Iterator[Callable[..., FleetRig]]:
    started: list[tuple[Fleet, PrometheusServer]] = []

    def make(scenario: str, *, plan_text: str | None = None, rps: float = LOAD_RPS) -> FleetRig:
        fleet = Fleet(scenario, rps=rps, seed=7)
        prometheus = PrometheusServer(tmp_path / f"prometheus-{len(started)}")
        started.append((fleet, prometheus))
        prometheus.start(fleet.metrics_targets)
        fleet.start()
        prometheus.wait_for_targets_up(fleet.metrics_targets)
        plan = demo_plan(fleet.router_url, prometheus.url, plan_text)
        return FleetRig(fleet, prometheus, plan, fleet.exposures())

    yield make
    for fleet, prometheus in started:
        fleet.stop()
        prometheus.stop()
