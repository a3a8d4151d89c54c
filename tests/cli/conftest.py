"""Running the real `shiprail` entry point, each call a process of its own, against the dev server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiprail.devstack.temporal import TemporalDevServer
from tests.helpers import plan_document


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Shiprail:
    """`shiprail ...` in a child process of its own; awaited so the in-process worker keeps
    working. Each call is forked from a process that imported the command line once
    (`tests.cli.zygote`); `fresh=True` starts the interpreter from scratch instead."""

    def __init__(self, address: str, zygote: str) -> None:
        self.address = address
        self.zygote = zygote

    async def __call__(
        self, *args: str, address: str | None = None, timeout: float = 120, fresh: bool = False
    ) -> Run:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address or self.address,
            "SHIPRAIL_ACTOR": "cli-tester",
            **_CONSOLE,
        }
        env.pop("SHIPRAIL_DEBUG", None)
        if fresh:
            return await self._fresh(args, env, timeout)
        with tempfile.TemporaryDirectory() as directory:
            out, err = Path(directory) / "out", Path(directory) / "err"
            reader, writer = await asyncio.open_unix_connection(self.zygote)
            request = {"argv": list(args), "env": env, "out": str(out), "err": str(err)}
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            pid = json.loads(await reader.readline())["pid"]
            try:
                line = await asyncio.wait_for(reader.readline(), timeout)
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"shiprail {' '.join(args)} did not end within {timeout}s") from None
            finally:
                writer.close()
            code = json.loads(line)["code"]
            return Run(code, out.read_text(), err.read_text())

    async def _fresh(self, args: tuple[str, ...], env: dict[str, str], timeout: float) -> Run:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shiprail",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            raise AssertionError(f"shiprail {' '.join(args)} did not end within {timeout}s") from None
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())


# The console's width and colour are read once, when the command line is imported.
_CONSOLE = {"COLUMNS": "200", "NO_COLOR": "1"}


@pytest.fixture(scope="session")
def shiprail(
    temporal_server: TemporalDevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shiprail]:
    path = str(tmp_path_factory.mktemp("zygote") / "cli.sock")
    zygote = subprocess.Popen(
        [sys.executable, "-m", "tests.cli.zygote", path],
        stdout=subprocess.PIPE,
        env={**os.environ, **_CONSOLE},
        text=True,
    )
    assert zygote.stdout is not None
    ready = zygote.stdout.readline()  # the imports take seconds; a failure ends the process
    assert ready == "ready\n", f"the CLI zygote did not start (exit {zygote.poll()})"
    yield Shiprail(temporal_server.address, path)
    zygote.kill()
    zygote.wait()


def write_plan(directory: Path, name: str, url: str, services: list[dict[str, Any]], **spec: Any) -> Path:
    spec.setdefault("defaults", {"steps": [10, 100], "bake": "1s"})
    spec["defaults"].setdefault("interval", "1s")
    document = plan_document(url, services, metadata={"name": name, "owner": "team-cli"}, **spec)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
