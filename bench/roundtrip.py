"""Temporal's own round trip on the embedded dev server: `python -m bench.roundtrip`.

What a rollback pays before shiprail's code runs: an activity completes (a bake's failing
verdict), the server schedules and hands out the next workflow task, and the worker runs
the workflow, which starts a local activity (a rollback's restore). A one-line workflow
does this `--runs` times; the histories give the server's share (completion to the
workflow task's start) and the local activity's own clock the rest.

`--journal` picks the dev server's SQLite journal: `rollback`, SQLite's default and what
`shiprail dev` runs (a journal synced in full at every commit), or `wal` (write-ahead,
synced at checkpoints).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench._cli import JOURNALS, output_file, positive
from shiprail.devstack.ports import free_port
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.errors import ShiprailError

_QUEUE = "roundtrip"


@activity.defn
async def verdict() -> None:
    """Stands for a bake: completes at once."""


@activity.defn
async def restore() -> float:
    """Stands for a restore: when it started."""
    return time.time()


@workflow.defn
class RoundTrip:
    @workflow.run
    async def run(self, runs: int) -> list[float]:
        started = []
        for _ in range(runs):
            await workflow.execute_activity(verdict, start_to_close_timeout=timedelta(seconds=10))
            started.append(
                await workflow.execute_local_activity(restore, start_to_close_timeout=timedelta(seconds=10))
            )
        return started


def _seconds(event: Any) -> float:
    return float(event.event_time.ToDatetime().timestamp())


async def measure(client: Client, runs: int) -> dict[str, Any]:
    """Round trips on the server `client` talks to, with a worker of its own in this process."""
    workflow_id = f"roundtrip-{time.time_ns()}"
    async with Worker(client, task_queue=_QUEUE, workflows=[RoundTrip], activities=[verdict, restore]):
        restores = await client.execute_workflow(RoundTrip.run, runs, id=workflow_id, task_queue=_QUEUE)
    events = list((await client.get_workflow_handle(workflow_id).fetch_history()).events)
    completed = [
        i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]
    server, worker = [], []
    for i, restored in zip(completed, restores, strict=True):
        task = next(e for e in events[i:] if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
        server.append(1000 * (_seconds(task) - _seconds(events[i])))
        worker.append(1000 * (restored - _seconds(task)))
    warm = slice(min(5, runs - 1), None)  # the first round trips load caches and connections
    total = [s + w for s, w in zip(server[warm], worker[warm], strict=True)]
    return {
        "runs": len(total),
        "server_median_ms": statistics.median(server[warm]),
        "worker_median_ms": statistics.median(worker[warm]),
        "total_median_ms": statistics.median(total),
        "total_p90_ms": statistics.quantiles(total, n=10)[-1] if len(total) > 1 else total[0],
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shiprail-roundtrip-") as state:
        server = TemporalDevServer(
            Path(state),
            port=free_port(),
            ui_port=None,
            sqlite_pragmas=JOURNALS[args.journal],
        )
        with server:
            client = await Client.connect(server.address)
            measured = await measure(client, args.runs)
        # What the server's database ran with, read back rather than taken from the option.
        database = f"file:{Path(state) / 'temporal.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(database, uri=True)) as db:
            (journal_mode,) = db.execute("PRAGMA journal_mode").fetchone()
        return {"journal": args.journal, "journal_mode": journal_mode, **measured}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.roundtrip", description=__doc__)
    parser.add_argument("--journal", choices=list(JOURNALS), default="rollback")
    parser.add_argument("--runs", type=positive, default=50, help="round trips (the first 5 warm up)")
    parser.add_argument("--json", type=output_file, help="write the results here")
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(_main(args))
    except ShiprailError as exc:
        parser.exit(exc.exit_code, f"error: {exc.message}\n")
    print(
        f"journal {results['journal']} ({results['journal_mode']}): activity completed → workflow task started "
        f"{results['server_median_ms']:.1f} ms, → local activity started {results['worker_median_ms']:.1f} ms, "
        f"total {results['total_median_ms']:.1f} ms median, {results['total_p90_ms']:.1f} ms p90 "
        f"({results['runs']} round trips)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
