"""Real HTTP backends behind a real HAProxy, per test session."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shiprail.devstack.haproxy import Backend, HaproxyServer
from shiprail.devstack.unleash import UnleashServer
from shiprail.plan.actuators import HaproxyActuator as HaproxyConfig

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
