"""A small chaos run in the suite; `make chaos` runs the large one."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail.devstack.prometheus import PrometheusServer
from tests.chaos.harness import run


@pytest.mark.xdist_group("chaos")
async def test_rollouts_survive_killed_workers_and_a_server_restart(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    # A wide pool: the locks rarely contend here (make chaos is where they queue; see the
    # README for what it found there).
    report = await run(tmp_path, prometheus.url, rollouts=4, kills=2, restarts=1, pool=12, seed=7)
    print(report.summary())
    assert report.kills == 2 and report.restarts == 1, report.summary()
    assert report.clean, "\n".join(
        [report.summary(), *report.lost, *report.wrong, *report.overlaps, *report.replay_failures]
    )
