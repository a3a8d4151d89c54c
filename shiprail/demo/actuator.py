"""An in-process implementation of the HTTP actuator contract (DESIGN §5).

It is the demo fleet's traffic router API and the test suite's actuator: it keeps each
service's exposure, honours idempotency keys, logs every call (so tests can prove order
and that nothing untouched was called), and can be told to fail.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from shiprail.errors import Unreachable
from shiprail.http_server import HttpServer
from shiprail.status import Exposure


@dataclass
class Call:
    method: str
    service: str
    time: float  # when it was answered (and, for a PUT, applied)
    version: str | None = None
    weight: float | None = None
    idempotency_key: str | None = None
    applied: bool = False
    status: int = 200
    received: float | None = None  # when it arrived, before the router's latency
    rollout_id: str | None = None
    after: Exposure | None = None  # the exposure this PUT left, when applied


@dataclass
class _Fault:
    status: int
    remaining: int


@dataclass
class ExposureStore:
    exposures: dict[str, Exposure] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _keys: dict[str, tuple[str, float]] = field(default_factory=dict)
    _faults: dict[tuple[str, str], _Fault] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, service: str, stable_version: str, canary_version: str | None = None, weight: float = 0
    ) -> None:
        with self._lock:
            self.exposures[service] = Exposure(
                service=service, stable_version=stable_version, canary_version=canary_version, weight=weight
            )

    def fail(self, service: str, method: str = "PUT", status: int = 500, times: int = 1) -> None:
        """The next `times` calls of `method` for `service` answer `status`."""
        with self._lock:
            self._faults[(service, method)] = _Fault(status, times)

    def _fault(self, service: str, method: str) -> int | None:
        fault = self._faults.get((service, method))
        if fault and fault.remaining > 0:
            fault.remaining -= 1
            return fault.status
        return None

    def get(self, service: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            status = self._fault(service, "GET")
            call = Call("GET", service, time.time(), status=status or 200)
            self.calls.append(call)
            if status:
                return status, {"error": "injected fault"}
            if service not in self.exposures:
                call.status = 404
                return 404, {"error": f"unknown service {service!r}"}
            return 200, self.exposures[service].model_dump()

    def put(self, body: dict[str, Any], received: float | None = None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            service = str(body.get("service", ""))
            call = Call(
                "PUT",
                service,
                time.time(),
                version=body.get("version"),
                weight=body.get("weight"),
                idempotency_key=body.get("idempotency_key"),
                received=received,
                rollout_id=body.get("rollout_id"),
            )
            self.calls.append(call)
            status = self._fault(service, "PUT")
            if status:
                call.status = status
                return status, {"error": "injected fault"}
            current = self.exposures.get(service)
            weight = body.get("weight")
            if (
                current is None
                or not isinstance(weight, int | float)
                or not 0 <= weight <= 100
                or not body.get("version")
            ):
                call.status = 400 if current is not None else 404
                return call.status, {"error": "bad exposure change"}
            key = str(body.get("idempotency_key") or "")
            if key and key in self._keys:
                return 200, current.model_dump()  # the same change again changes nothing
            version = str(body["version"])
            if version == current.stable_version:
                # Back to stable: the canary is gone, whatever weight was asked for.
                updated = Exposure(service=service, stable_version=current.stable_version)
            else:
                updated = Exposure(
                    service=service,
                    stable_version=current.stable_version,
                    canary_version=version,
                    weight=float(weight),
                )
            self.exposures[service] = updated
            if key:
                self._keys[key] = (version, float(weight))
            call.applied = True
            call.after = updated
            return 200, updated.model_dump()

    def puts(self, *, applied_only: bool = True) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == "PUT" and (c.applied or not applied_only)]


class ActuatorServer:
    """Serves an `ExposureStore` at http://127.0.0.1:PORT/exposure."""

    def __init__(
        self,
        store: ExposureStore | None = None,
        port: int = 0,
        latency: float = 0.0,
        required_headers: dict[str, str] | None = None,
    ) -> None:
        self.store = store or ExposureStore()
        self.latency = latency
        # Requests lacking these headers get 401, as a real deploy API would answer them.
        self.required_headers = required_headers or {}
        try:
            self._server = HttpServer(("127.0.0.1", port), self._handler())
        except OSError as exc:
            raise Unreachable(
                f"cannot listen on 127.0.0.1:{port} for the router API: {exc.strerror}"
            ) from None
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self.connections_accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/exposure"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as a real deploy API behind a load balancer would answer; without
            # Nagle, or a response split in two waits out the client's delayed ACK (40 ms).
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)
                    server.connections_accepted += 1

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if all(self.headers.get(k) == v for k, v in server.required_headers.items()):
                    return True
                self._send(401, {"error": "missing or wrong credentials"})
                return False

            def parse_request(self) -> bool:
                # The request line is in: it arrived now, before its headers are parsed.
                self._received = time.time()
                return super().parse_request()

            def _wait(self) -> None:
                """Answer `latency` after the request arrived, its own handling included.

                Sleeping a full `latency` after parsing would add this server's own CPU
                time (and the GIL's handoffs between a wave's threads) to every call, so
                the router would answer slower than it claims to.
                """
                if server.latency:
                    time.sleep(max(0.0, self._received + server.latency - time.time()))

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                self._wait()
                if not self._authorised():
                    return
                self._send(*server.store.get(query.get("service", [""])[0]))

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                self._wait()
                if not self._authorised():
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, {"error": "body is not JSON"})
                    return
                self._send(*server.store.put(body if isinstance(body, dict) else {}, self._received))

        return Handler

    def start(self) -> ActuatorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="actuator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
            self._thread = None
        self._server.server_close()
        # A stopped router answers nothing, not even on a connection a client kept alive.
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # the client hung up already
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.clear()
