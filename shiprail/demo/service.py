"""One simulated service: a stable and a canary version behind a weighted router.

Each request is routed by the weight the actuator set, served with the chosen version's
behaviour, and calls the service's providers over real HTTP, so a failing provider shows
up in its consumers' metrics as it would in production. Metrics are real Prometheus
metrics served at `/metrics`.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shiprail.demo.scenarios import BASELINE, Behaviour
from shiprail.http_server import HttpServer
from shiprail.status import Exposure

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.5)
_CORRUPT = "X-Demo-Corrupt"
# A kept-alive connection the peer has not used for this long is closed: by then the caller
# is gone (a stopped load generator, a consumer of an earlier fleet).
_IDLE = 30.0
_log = logging.getLogger(__name__)


class DemoService:
    def __init__(
        self,
        name: str,
        exposure: Callable[[], Exposure],
        providers: dict[str, str],
        canary: Behaviour = BASELINE,
        *,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self._exposure = exposure
        self.providers = providers  # provider name → host:port
        self.canary = canary
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._serving_since: dict[str, float] = {}
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "http_requests",
            "Requests served, by version and status code",
            ["service", "version", "code"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Request latency, by version",
            ["service", "version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._server = HttpServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> DemoService:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    # ---- serving ---------------------------------------------------------------------

    def _uniform(self) -> float:
        with self._random_lock:
            return self._random.random()

    def _lognormal(self, median: float) -> float:
        with self._random_lock:
            return self._random.lognormvariate(0, 0.35) * median

    def _route(self) -> tuple[str, Behaviour]:
        exposure = self._exposure()
        stable = exposure.stable_version or "unknown"
        canary = exposure.canary_version
        if canary and canary != stable and self._uniform() * 100 < exposure.weight:
            return canary, self.canary
        return stable, BASELINE

    def handle(self) -> tuple[int, dict[str, str]]:
        """Serve one request: route, call providers, succeed or fail. Returns (code, headers)."""
        started = time.monotonic()
        version, behaviour = self._route()
        since = self._serving_since.setdefault(version, time.time())
        code = 200
        for provider, address in self.providers.items():
            if not _call(address, provider):
                code = 502  # a provider failed us: our users see an error too
        delay = self._lognormal(behaviour.latency) + behaviour.extra_latency
        time.sleep(delay)  # our own work comes on top of our providers' time
        if code == 200 and self._uniform() < behaviour.error_probability(time.time(), since):
            code = 500
        headers = {}
        if code == 200 and behaviour.corrupt and self._uniform() < behaviour.corrupt:
            headers[_CORRUPT] = "1"
        self._requests.labels(self.name, version, str(code)).inc()
        self._duration.labels(self.name, version).observe(time.monotonic() - started)
        return code, headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            # Kept alive: a new connection (and a new serving thread) for every request
            # made the fleet's own plumbing most of the CPU a test or a demo spends.
            protocol_version = "HTTP/1.1"
            timeout = _IDLE

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    body = generate_latest(service.registry)
                    self.send_response(200)
                    self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                else:
                    code, headers = service.handle()
                    body = b"ok\n" if code == 200 else b"error\n"
                    self.send_response(code)
                    for key, value in headers.items():
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


_pool = threading.local()
# What a call that got no answer raises; a kept-alive connection the peer closed gives an
# HTTPException (RemoteDisconnected is both) rather than a socket error.
_NO_ANSWER = (OSError, http.client.HTTPException)


def _call(address: str, provider: str, timeout: float = 2.0) -> bool:
    """One request to a provider; False when it failed or answered garbage.

    A call that never got an answer (refused, reset, timed out) is tried once more, as a
    service mesh retries a connect failure: on a loaded host such failures hit whichever
    version happened to be calling, and the scenarios' errors are answers, never these.
    Each serving thread keeps one connection per provider alive; one the provider closed
    while it sat idle is opened again without counting as an attempt.
    """
    for attempt in (1, 2):
        reused, connection = _connection(address, timeout)
        try:
            return _get(connection, f"/{provider}")
        except _NO_ANSWER as failure:
            _drop(address)
            if reused and not isinstance(failure, TimeoutError):
                try:
                    return _get(_connection(address, timeout)[1], f"/{provider}")
                except _NO_ANSWER as again:
                    _drop(address)
                    failure = again
            _log.warning("call %d to %s at %s got no answer: %r", attempt, provider, address, failure)
    return False


def _get(connection: http.client.HTTPConnection, path: str) -> bool:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status < 500 and response.getheader(_CORRUPT) is None


def _connection(address: str, timeout: float) -> tuple[bool, http.client.HTTPConnection]:
    """This thread's connection to `address`, and whether it was open before."""
    connections: dict[str, http.client.HTTPConnection] = _pool.__dict__.setdefault("connections", {})
    if address in connections:
        return True, connections[address]
    host, _, port = address.rpartition(":")
    connections[address] = http.client.HTTPConnection(host, int(port), timeout=timeout)
    return False, connections[address]


def _drop(address: str) -> None:
    connections: dict[str, http.client.HTTPConnection] = _pool.__dict__.setdefault("connections", {})
    connection = connections.pop(address, None)
    if connection is not None:
        connection.close()
