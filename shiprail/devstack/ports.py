"""Port helpers for launching local servers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Below this sit the well-known and most registered ports, which a service is likelier to
# claim by name.
_FLOOR = 16384
# Where the kernel's range cannot be read (macOS, BSD): the IANA dynamic range they use.
_DYNAMIC = (49152, 65535)
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to on `host`, chosen below the kernel's ephemeral range.

    A port that binding port 0 hands out goes back to the kernel's pool as soon as it is
    released, and until our server binds it the kernel may give it to any process that binds
    port 0 (a Temporal dev server picks its internal ports so) or connects out; a readiness
    probe connecting to it while nothing listens can even be given it as its own source port
    and connect to itself. Either way our server then finds its port taken. Below the
    ephemeral range a port is only taken by a process that names it."""
    low, _ = ephemeral_range()
    if low - _FLOOR >= 1024:
        pick = random.SystemRandom()
        for _ in range(64):
            port = pick.randrange(_FLOOR, low)
            if _bindable(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ephemeral_range(path: Path = _RANGE_FILE) -> tuple[int, int]:
    """The kernel's range of ports for port 0 and outgoing connections."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return _DYNAMIC
    return low, high


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
