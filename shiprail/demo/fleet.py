"""The demo fleet: services wired along their dependencies, one router API, steady load.

The router API is the HTTP actuator contract (DESIGN §5) over every service's exposure,
so a plan drives the fleet exactly as it would drive a real traffic router.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.client import HTTPConnection, HTTPException

from shiprail.demo.actuator import ActuatorServer, ExposureStore
from shiprail.demo.scenarios import BASELINE, ENTRY, LOAD_RPS, SCENARIOS, STABLE_VERSIONS, TOPOLOGY, Scenario
from shiprail.demo.service import DemoService
from shiprail.status import Exposure


class LoadGenerator:
    """Sends `rps` requests per second to one service, spread evenly, from a few threads."""

    def __init__(self, address: str, rps: float, *, concurrency: int = 8) -> None:
        self.address = address
        self.rps = rps
        self.concurrency = concurrency
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> LoadGenerator:
        if self.rps <= 0:
            return self
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, index: int) -> None:
        period = self.concurrency / self.rps
        next_at = time.monotonic() + period * index / self.concurrency
        host, _, port = self.address.rpartition(":")
        # Kept alive, as a real client's pool would; one the service closed is reopened.
        connection: HTTPConnection | None = None
        try:
            while not self._stop.is_set():
                if self._stop.wait(max(next_at - time.monotonic(), 0.0)):
                    return
                next_at += period
                ok = False
                for _ in (1, 2):
                    reused = connection is not None
                    if connection is None:
                        connection = HTTPConnection(host, int(port), timeout=5)
                    try:
                        connection.request("GET", "/")
                        response = connection.getresponse()
                        response.read()
                        ok = response.status < 500
                        break
                    except (OSError, HTTPException):
                        connection.close()
                        connection = None
                        if not reused:
                            break
                with self._lock:
                    self.sent += 1
                    self.failed += 0 if ok else 1
        finally:
            if connection is not None:
                connection.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


class Fleet:
    """Every service of `TOPOLOGY`, the router API on `router_port`, and the load."""

    def __init__(
        self,
        scenario: str | Scenario = "good",
        *,
        rps: float = LOAD_RPS,
        router_port: int = 0,
        seed: int | None = None,
    ) -> None:
        self.scenario = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
        self.store = ExposureStore()
        for name, version in STABLE_VERSIONS.items():
            self.store.add(name, version)
        self.router = ActuatorServer(self.store, port=router_port)
        self.services: dict[str, DemoService] = {}
        # Providers first, so every consumer knows its providers' addresses.
        for name in _providers_first():
            self.services[name] = DemoService(
                name,
                self._exposure_of(name),
                {p: self.services[p].address for p in TOPOLOGY[name]},
                self.scenario.canary.get(name, BASELINE),
                seed=None if seed is None else seed + len(self.services),
            )
        rate = self.scenario.load_rps if self.scenario.load_rps is not None else rps
        self.load = LoadGenerator(self.services[ENTRY].address, rate)

    def _exposure_of(self, name: str) -> Callable[[], Exposure]:
        return lambda: self.store.exposures[name]

    @property
    def router_url(self) -> str:
        return self.router.url

    @property
    def metrics_targets(self) -> list[str]:
        return [service.address for service in self.services.values()]

    def exposures(self) -> dict[str, Exposure]:
        return {name: self.store.exposures[name] for name in self.services}

    def start(self) -> Fleet:
        self.router.start()
        for service in self.services.values():
            service.start()
        self.load.start()
        return self

    def stop(self) -> None:
        self.load.stop()
        for service in self.services.values():
            service.stop()
        self.router.stop()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _providers_first() -> list[str]:
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for provider in TOPOLOGY[name]:
            visit(provider)
        done.append(name)

    for name in TOPOLOGY:
        visit(name)
    return done
