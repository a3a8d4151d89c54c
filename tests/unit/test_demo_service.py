"""The demo services' calls to their providers: a call that got no answer is tried again."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from shiprail.demo.service import _call


def _provider(answers: list[bytes | None]) -> tuple[str, threading.Thread]:
    """A provider that, per connection in turn, hangs up without a word (None) or answers."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            for answer in answers:
                connection, _ = listener.accept()
                with connection:
                    connection.recv(4096)
                    if answer is not None:
                        connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"127.0.0.1:{listener.getsockname()[1]}", thread


_OK = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
_FAILED = b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 6\r\n\r\nerror\n"


def test_a_provider_that_hung_up_once_is_called_again(caplog: pytest.LogCaptureFixture) -> None:
    address, thread = _provider([None, _OK])
    assert _call(address, "payments") is True
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "payments" in caplog.records[0].getMessage()


def test_a_provider_that_never_answers_is_a_failed_call() -> None:
    address, thread = _provider([None, None])
    assert _call(address, "payments") is False
    thread.join(timeout=5)
    assert not thread.is_alive()  # both attempts reached it, and no third


def test_an_error_answer_is_not_retried() -> None:
    address, thread = _provider([_FAILED, _OK])
    assert _call(address, "payments") is False
    thread.join(timeout=0.5)
    assert thread.is_alive()  # still waiting for a second call that never came


_KEPT = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"


def _kept_alive_provider(requests_per_connection: list[int]) -> tuple[str, threading.Thread, list[int]]:
    """An HTTP/1.1 provider that answers the given number of requests on each connection in
    turn, then hangs up; it records how many each connection got."""
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[int] = []

    def serve() -> None:
        with listener:
            for count in requests_per_connection:
                connection, _ = listener.accept()
                served.append(0)
                with connection:
                    for _ in range(count):
                        if not connection.recv(4096):
                            break
                        connection.sendall(_KEPT)
                        served[-1] += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"127.0.0.1:{listener.getsockname()[1]}", thread, served


def test_calls_share_one_kept_alive_connection() -> None:
    address, thread, served = _kept_alive_provider([3])
    assert all(_call(address, "payments") for _ in range(3))
    thread.join(timeout=5)
    assert served == [3]


def test_a_kept_alive_connection_the_provider_closed_is_reopened_without_a_failed_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    address, thread, served = _kept_alive_provider([1, 1])
    assert _call(address, "payments") is True
    assert _call(address, "payments") is True
    thread.join(timeout=5)
    assert served == [1, 1]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
