"""A throwaway PostgreSQL cluster (Debian's `postgresql`) for the Unleash server the tests
and the demo run: initdb with trust auth on loopback, one database, a clean stop.

`initdb` and `postgres` refuse to run as root, so as root they run as the `postgres` user
(Debian's package creates it), with the cluster in a directory of its own under the system
temporary directory: a root-owned state directory (pytest's, say) is closed to that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from shiprail.devstack.ports import free_port
from shiprail.devstack.process import ServerProcess
from shiprail.errors import Unreachable


def postgres_bin() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise Unreachable(
        "PostgreSQL's initdb was not found", hint="install the server: `sudo apt-get install postgresql`"
    )


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PostgresServer:
    def __init__(self, state_dir: Path, *, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self._process: ServerProcess | None = None
        self._cluster: Path | None = None

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, databases: tuple[str, ...] = ("unleash",)) -> PostgresServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._cluster = Path(tempfile.mkdtemp(prefix="shiprail-postgres-"))
            shutil.chown(self._cluster, "postgres")
        cluster = self._cluster or self.state_dir
        data = cluster / "data"
        binaries = postgres_bin()
        if not data.exists():
            done = subprocess.run(
                _as_owner(
                    [
                        str(binaries / "initdb"),
                        "-D",
                        str(data),
                        "--auth=trust",
                        "-U",
                        "postgres",
                        "-E",
                        "UTF8",
                    ]
                ),
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise Unreachable(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        self._process = ServerProcess(
            "PostgreSQL",
            _as_owner(
                [
                    str(binaries / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(cluster),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",  # a throwaway cluster: durability is not what it is for
                ]
            ),
            self.state_dir / "postgres.log",
        )
        self._process.start(lambda: self._ready(binaries))
        for database in databases:
            subprocess.run(
                [
                    str(binaries / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    database,
                ],
                capture_output=True,
                check=False,
            )
        return self

    def _ready(self, binaries: Path) -> bool:
        done = subprocess.run(
            [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
        )
        return done.returncode == 0

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._cluster is not None:
            shutil.rmtree(self._cluster, ignore_errors=True)
            self._cluster = None
