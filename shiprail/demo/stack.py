"""Everything `shiprail demo` runs: Temporal dev server, Prometheus, the fleet.

The plan is the single source of truth for where things listen: the fleet's router
starts on the port its actuators point at, Prometheus on the port `spec.prometheus.url`
names. A busy port is a clear error, never a silent second copy.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from shiprail.demo.fleet import Fleet
from shiprail.demo.haproxy_fleet import HaproxyFleet
from shiprail.demo.scenarios import LOAD_RPS, SCENARIOS
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.errors import BadInput
from shiprail.plan import RolloutPlan
from shiprail.plan.actuators import HttpActuator

_LOCAL = {"127.0.0.1", "localhost"}


def _local_port(url: str, what: str) -> int:
    parsed = urlparse(url)
    if parsed.hostname not in _LOCAL or parsed.port is None:
        raise BadInput(f"{what} {url!r} must be http://127.0.0.1:PORT/… for the demo")
    return parsed.port


def demo_ports(plan: RolloutPlan) -> tuple[int, int]:
    """(router port, Prometheus port) the plan expects."""
    if any(not isinstance(s.actuator, HttpActuator) for s in plan.spec.services):
        raise BadInput("every service of a demo plan must use the http actuator (the fleet's router)")
    routers = {
        _local_port(s.actuator.url, f"service {s.name}: actuator url")
        for s in plan.spec.services
        if isinstance(s.actuator, HttpActuator)
    }
    if len(routers) != 1:
        raise BadInput("every service of a demo plan must use the same actuator url (the fleet's router)")
    if plan.spec.prometheus is None:
        raise BadInput("a demo plan needs spec.prometheus.url (where the demo starts Prometheus)")
    return routers.pop(), _local_port(plan.spec.prometheus.url, "spec.prometheus.url")


class DemoStack:
    """Temporal, Prometheus and the demo fleet; `router` says what moves the traffic: the
    fleet's own router API (the HTTP actuator contract) or the real HAProxy."""

    def __init__(
        self,
        plan: RolloutPlan,
        scenario: str,
        state_dir: Path,
        *,
        rps: float = LOAD_RPS,
        temporal_port: int = 7233,
        ui_port: int = 8233,
        router: str = "http",
    ) -> None:
        if scenario not in SCENARIOS:
            raise BadInput(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
        if router not in ("http", "haproxy"):
            raise BadInput(f"unknown router {router!r} (known: http, haproxy)")
        router_port, prometheus_port = demo_ports(plan)
        self.temporal = TemporalDevServer(state_dir / "temporal", port=temporal_port, ui_port=ui_port)
        self.prometheus = PrometheusServer(state_dir / "prometheus", port=prometheus_port)
        self.fleet: Fleet | HaproxyFleet
        if router == "haproxy":
            haproxy = HaproxyFleet(plan, state_dir / "haproxy", scenario, rps=rps)
            self.fleet, self.plan = haproxy, haproxy.plan_for(plan)
        else:
            self.fleet, self.plan = Fleet(scenario, rps=rps, router_port=router_port), plan

    def start(self) -> DemoStack:
        """Start in dependency order; on any failure stop what already runs."""
        try:
            self.temporal.start()
            self.prometheus.start(self.fleet.metrics_targets)
            self.fleet.start()
            self.prometheus.wait_for_targets_up(self.fleet.metrics_targets)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.fleet.stop()
        self.prometheus.stop()
        self.temporal.stop()
