"""Running the real `shiprail` console entry point as a subprocess against the dev server."""

from __future__ import annotations

import asyncio
import os
import sys
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
    """`shiprail ...` in a child process; awaited so the in-process worker keeps working."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def __call__(self, *args: str, address: str | None = None, timeout: float = 120) -> Run:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address or self.address,
            "SHIPRAIL_ACTOR": "cli-tester",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        env.pop("SHIPRAIL_DEBUG", None)
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


@pytest.fixture(scope="session")
def shiprail(temporal_server: TemporalDevServer) -> Shiprail:
    return Shiprail(temporal_server.address)


def write_plan(directory: Path, name: str, url: str, services: list[dict[str, Any]], **spec: Any) -> Path:
    spec.setdefault("defaults", {"steps": [10, 100], "bake": "1s"})
    spec["defaults"].setdefault("interval", "1s")
    document = plan_document(url, services, metadata={"name": name, "owner": "team-cli"}, **spec)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
