"""The real HAProxy (Debian's `haproxy`) in front of stable/canary backends, for the demo
and the tests: one listener per backend on a free port, `balance random` (each request
an independent draw, so a canary's share is binomial in its weight), and an admin-level
runtime API on a Unix socket and a TCP port.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shiprail.devstack.ports import free_port, port_in_use
from shiprail.devstack.process import ServerProcess
from shiprail.errors import Unreachable


@dataclass(frozen=True)
class Backend:
    name: str
    stable: str  # host:port
    canary: str
    canary_weight: int = 0  # out of 100, as configured (what a reload resets to)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (Path("/usr/sbin/haproxy").exists() and "/usr/sbin/haproxy")
    if found:
        return str(found)
    raise Unreachable(
        "the `haproxy` binary was not found",
        hint="install it: `sudo apt-get install haproxy` (Debian/Ubuntu)",
    )


class HaproxyServer:
    def __init__(
        self,
        state_dir: Path,
        backends: list[Backend],
        *,
        ip: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.ip = ip
        self.backends = backends
        # Given when the backends must know the listeners' ports first (services calling
        # their providers through HAProxy).
        self.ports = ports or {b.name: free_port(ip) for b in backends}
        self.admin_port = free_port(ip)
        self._process: ServerProcess | None = None
        # A Unix socket's path is short (HAProxy takes 97 bytes): a deep state directory
        # gets its socket in a short one of its own.
        self._socket_dir = (
            state_dir if len(str(state_dir)) < 80 else Path(tempfile.mkdtemp(prefix="shiprail-hap-"))
        )

    @property
    def socket(self) -> Path:
        return self._socket_dir / "admin.sock"

    @property
    def admin_address(self) -> str:
        return f"{self.ip}:{self.admin_port}"

    def url(self, backend: str) -> str:
        return f"http://{self.ip}:{self.ports[backend]}"

    def _config(self) -> str:
        lines = [
            "global",
            f"    stats socket {self.socket} mode 600 level admin",
            f"    stats socket ipv4@{self.admin_address} level admin",
            "    maxconn 2000",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 10s",
            "    timeout server 10s",
        ]
        for b in self.backends:
            lines += [
                f"listen {b.name}",
                f"    bind {self.ip}:{self.ports[b.name]}",
                "    balance random",
                f"    server stable {b.stable} weight {100 - b.canary_weight}",
                f"    server canary {b.canary} weight {b.canary_weight}",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> HaproxyServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "haproxy.cfg"
        config.write_text(self._config())
        self._process = ServerProcess(
            "HAProxy", [haproxy_binary(), "-db", "-f", str(config)], self.state_dir / "haproxy.log"
        )
        self._process.start(self._ready)
        return self

    def _ready(self) -> bool:
        if not self.socket.exists() or not all(port_in_use(p, self.ip) for p in self.ports.values()):
            return False
        try:
            with socket.create_connection((self.ip, self.admin_port), timeout=1) as conn:
                conn.sendall(b"show info\n")
                return b"Name: HAProxy" in conn.recv(4096)
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._socket_dir != self.state_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
