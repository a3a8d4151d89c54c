"""shiprail's listeners stay quiet when a client hangs up, and still report real failures."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shiprail.http_server import HttpServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        raise ValueError("the handler broke")


class _Watched(HttpServer):
    """Says when a request is over, however it ended."""

    done: threading.Semaphore

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.done.release()


@pytest.fixture
def server() -> Any:
    httpd = _Watched(("127.0.0.1", 0), _Handler)
    httpd.done = threading.Semaphore(0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _connect(httpd: HttpServer) -> socket.socket:
    return socket.create_connection(httpd.server_address[:2], timeout=5)  # type: ignore[arg-type]


def test_a_client_that_resets_its_connection_prints_nothing(
    server: _Watched, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="shiprail.http_server")
    client = _connect(server)
    client.sendall(b"GET / HT")
    # Closing with a zero linger sends RST: the server's read fails with ECONNRESET.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    assert server.done.acquire(timeout=10)
    assert "Traceback" not in capsys.readouterr().err
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "hung up" in caplog.records[0].getMessage()


def test_a_handler_that_fails_is_logged_with_its_traceback(
    server: _Watched, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with _connect(server) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        client.recv(1024)
    assert server.done.acquire(timeout=10)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info and errors[0].exc_info[0] is ValueError


def test_a_burst_of_callers_is_queued_while_the_server_is_too_busy_to_accept() -> None:
    # Nothing accepts here, as on a host too loaded to run the accepting thread: with the
    # standard library's backlog of 5, the seventh handshake is dropped and connect() waits.
    httpd = HttpServer(("127.0.0.1", 0), _Handler)
    callers: list[socket.socket] = []
    try:
        for _ in range(64):
            callers.append(socket.create_connection(httpd.server_address[:2], timeout=0.5))  # type: ignore[arg-type]
    finally:
        for caller in callers:
            caller.close()
        httpd.server_close()
    assert len(callers) == 64
