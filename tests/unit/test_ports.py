"""Ports for local servers are chosen where no other process is handed them."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from shiprail.devstack import ports
from shiprail.devstack.ports import ephemeral_range, free_port


def test_a_free_port_lies_below_the_kernels_ephemeral_range_and_can_be_bound() -> None:
    low, _ = ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert 16384 <= port < low, port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_something_is_bound_to_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (65000, 65535))
        picks = iter([taken, taken, 20011])
        monkeypatch.setattr(random.SystemRandom, "randrange", lambda self, a, b: next(picks))
        assert free_port() == 20011


def test_the_ephemeral_range_is_read_from_the_kernel_or_taken_as_the_dynamic_one(tmp_path: Path) -> None:
    table = tmp_path / "range"
    table.write_text("40000\t50000\n")
    assert ephemeral_range(table) == (40000, 50000)
    table.write_text("garbled")
    assert ephemeral_range(table) == (49152, 65535)
    assert ephemeral_range(tmp_path / "missing") == (49152, 65535)


def test_with_no_room_below_the_ephemeral_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (16500, 60999))
    port = free_port()
    assert port > 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
