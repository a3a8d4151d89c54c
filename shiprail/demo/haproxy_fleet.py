"""The demo fleet behind the real HAProxy: every service runs as two processes' worth of
servers (its stable version and its canary, each pinned), HAProxy balances each service's
traffic between them by weight, and consumers call their providers through HAProxy too.
The plan's actuators become HAProxy blocks on the runtime API, so the demo drives HAProxy
exactly as a rollout would in production.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from shiprail.demo.fleet import LoadGenerator, _providers_first
from shiprail.demo.scenarios import BASELINE, ENTRY, LOAD_RPS, SCENARIOS, STABLE_VERSIONS, TOPOLOGY, Scenario
from shiprail.demo.service import DemoService
from shiprail.devstack.haproxy import Backend, HaproxyServer
from shiprail.devstack.ports import free_port
from shiprail.plan.actuators import HaproxyActuator
from shiprail.plan.models import RolloutPlan
from shiprail.status import Exposure


def _pinned(exposure: Exposure) -> Callable[[], Exposure]:
    return lambda: exposure


class HaproxyFleet:
    def __init__(
        self,
        plan: RolloutPlan,
        state_dir: Path,
        scenario: str | Scenario = "good",
        *,
        rps: float = LOAD_RPS,
    ) -> None:
        self.scenario = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
        versions = {s.name: s.version for s in plan.spec.services}
        self.canary_versions: dict[str, str] = {}
        frontends = {name: free_port() for name in TOPOLOGY}
        self.services: dict[str, tuple[DemoService, DemoService]] = {}
        for name in _providers_first():
            providers = {p: f"127.0.0.1:{frontends[p]}" for p in TOPOLOGY[name]}
            stable = STABLE_VERSIONS[name]
            canary = self.canary_versions[name] = versions.get(name, f"{stable}-canary")
            self.services[name] = (
                DemoService(name, _pinned(Exposure(service=name, stable_version=stable)), providers),
                DemoService(
                    name,
                    _pinned(Exposure(service=name, stable_version=stable, canary_version=canary, weight=100)),
                    providers,
                    self.scenario.canary.get(name, BASELINE),
                ),
            )
        backends = [Backend(name, s.address, c.address) for name, (s, c) in self.services.items()]
        self.haproxy = HaproxyServer(state_dir, backends, ports=frontends)
        rate = self.scenario.load_rps if self.scenario.load_rps is not None else rps
        self.load = LoadGenerator(f"127.0.0.1:{frontends[ENTRY]}", rate)

    def plan_for(self, plan: RolloutPlan) -> RolloutPlan:
        """The plan with every service's actuator pointed at its HAProxy backend."""
        services = [
            s.model_copy(
                update={
                    "actuator": HaproxyActuator(
                        type="haproxy",
                        socket=str(self.haproxy.socket),
                        backend=s.name,
                        stable="stable",
                        canary="canary",
                        stable_version=STABLE_VERSIONS.get(s.name),
                    )
                }
            )
            for s in plan.spec.services
        ]
        return plan.model_copy(update={"spec": plan.spec.model_copy(update={"services": services})})

    @property
    def router_url(self) -> str:
        return f"HAProxy runtime API at {self.haproxy.socket} (admin level)"

    @property
    def metrics_targets(self) -> list[str]:
        return [server.address for pair in self.services.values() for server in pair]

    def exposures(self) -> dict[str, Exposure]:
        """Each backend's weights as HAProxy has them now."""
        found = {}
        for name in self.services:
            canary_weight = _weight(self.haproxy.socket, f"{name}/canary")
            stable_weight = _weight(self.haproxy.socket, f"{name}/stable")
            total = canary_weight + stable_weight
            found[name] = Exposure(
                service=name,
                stable_version=STABLE_VERSIONS[name],
                canary_version=self.canary_versions[name] if canary_weight else None,
                weight=round(100 * canary_weight / total, 2) if total else 0.0,
            )
        return found

    def start(self) -> HaproxyFleet:
        for pair in self.services.values():
            for server in pair:
                server.start()
        self.haproxy.start()
        self.load.start()
        return self

    def stop(self) -> None:
        self.load.stop()
        self.haproxy.stop()
        for pair in self.services.values():
            for server in pair:
                server.stop()


def _weight(path: Path, server: str) -> int:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        conn.sendall(f"get weight {server}\n".encode())
        answer = conn.recv(256).decode()
    return int(answer.split()[0])
