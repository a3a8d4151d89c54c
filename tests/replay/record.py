"""Record the replay corpus: `python -m tests.replay.record [SCENARIO ...]`.

Starts a private dev server, Prometheus and worker, runs each scenario and writes its
histories to tests/replay/histories/. Re-record only on purpose: the stored files are
what running rollouts of older releases look like, and every future change to the
workflow code must still replay them. Before re-recording a scenario whose path changed,
keep its old file as `<scenario>@<what-changed>.json`: it still has to replay.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from shiprail.client import connect
from shiprail.devstack.ports import free_port
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.worker import running_worker
from tests.replay import history
from tests.replay.scenarios import SCENARIOS, Rig, new_id


async def _record(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as state:
        temporal = TemporalDevServer(Path(state) / "temporal", port=free_port(), ui_port=free_port())
        prometheus = PrometheusServer(Path(state) / "prometheus")
        temporal.start()
        prometheus.start()
        try:
            client = await connect(temporal.address)
            async with running_worker(client):
                rig = Rig(client, prometheus.url)
                for name in names:
                    handle, expected = await SCENARIOS[name](rig, new_id(name))
                    status = await handle.result()
                    if status.phase is not expected:
                        raise SystemExit(f"{name}: ended {status.phase.value}, expected {expected.value}")
                    path = history.save(name, await history.fetch(client, handle))
                    print(f"{name}: {status.phase.value} -> {path}")
        finally:
            prometheus.stop()
            temporal.stop()


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    history.HISTORIES.mkdir(exist_ok=True)
    asyncio.run(_record(names))


if __name__ == "__main__":
    main()
