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
