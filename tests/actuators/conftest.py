"""Real HTTP backends behind a real HAProxy, per test session."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiprail.devstack.haproxy import Backend, HaproxyServer
from shiprail.devstack.unleash import UnleashServer
from shiprail.plan import RolloutPlan, parse_plan
from shiprail.plan.actuators import HaproxyActuator as HaproxyConfig
from tests.helpers import plan_document
from tests.workflow.helpers import WEIGHT_GATE

SERVICES = ("alpha", "beta", "gamma")


class NamedBackend:
    """An HTTP server that answers every request with its own name."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaproxyServer]:
    servers = {name: (NamedBackend(f"{name}-stable"), NamedBackend(f"{name}-canary")) for name in SERVICES}
    backends = [Backend(name, stable.address, canary.address) for name, (stable, canary) in servers.items()]
    server = HaproxyServer(Path(tmp_path_factory.mktemp("haproxy")), backends).start()
    yield server
    server.stop()
    for stable, canary in servers.values():
        stable.stop()
        canary.stop()


def haproxy_config(server: HaproxyServer, backend: str, *, tcp: bool = False) -> HaproxyConfig:
    where = {"address": server.admin_address} if tcp else {"socket": str(server.socket)}
    return HaproxyConfig.model_validate(
        {"type": "haproxy", "backend": backend, "stable": "stable", "canary": "canary", **where}
    )


@pytest.fixture(scope="session")
def unleash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnleashServer]:
    """A real Unleash on a real PostgreSQL; its admin token in UNLEASH_ADMIN_TOKEN and its
    backend token in UNLEASH_CLIENT_TOKEN, the way a worker is given them."""
    server = UnleashServer(Path(tmp_path_factory.mktemp("unleash"))).start()
    os.environ["UNLEASH_ADMIN_TOKEN"] = server.admin_token
    os.environ["UNLEASH_CLIENT_TOKEN"] = server.backend_token
    yield server
    server.stop()


def chain_plan(
    blocks: dict[str, dict[str, Any]], fail_on: str | None, *, name: str = "new-pricing", **defaults: Any
) -> RolloutPlan:
    """A chain of services (each depending on the one before, in the order given) driven by
    `blocks`, 10 → 50 → 100 %; the service `fail_on` has a gate that fails above 20 %."""
    services: list[dict[str, Any]] = []
    names = list(blocks)
    for index, service_name in enumerate(names):
        service: dict[str, Any] = {"name": service_name, "actuator": blocks[service_name]}
        if index:
            service["depends_on"] = [names[index - 1]]
        if service_name == fail_on:
            service["gates"] = ["weight"]
        services.append(service)
    document = plan_document(
        "unused",
        services,
        metadata={"name": name},
        defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s", "gates": [], **defaults},
        gates={"weight": WEIGHT_GATE},
    )
    return parse_plan(yaml.safe_dump(document))
