"""`make chaos`: `python -m tests.chaos [--rollouts 50] [--kills 20] [--restarts 3] [--departures 3] [--seed 1]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from shiprail.devstack.prometheus import PrometheusServer
from tests.chaos.harness import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--departures", type=int, default=3, help="release trains of three cars departing")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shiprail-chaos-") as tmp:
        prometheus = PrometheusServer(Path(tmp) / "prometheus")
        prometheus.start()
        try:
            report = asyncio.run(
                run(
                    Path(tmp),
                    prometheus.url,
                    rollouts=args.rollouts,
                    kills=args.kills,
                    restarts=args.restarts,
                    departures=args.departures,
                    seed=args.seed,
                )
            )
        finally:
            prometheus.stop()
    for problem in (
        report.lost + report.wrong + report.double_applies + report.overlaps + report.replay_failures
    ):
        print(f"  {problem}")
    print(report.summary())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
