"""`shiprail dev` and `shiprail worker`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import platformdirs
import typer

from shiprail.cli._console import out
from shiprail.cli._signals import run
from shiprail.client import TASK_QUEUE, connect


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("shiprail"))


def dev(
    state_dir: Annotated[
        Path | None, typer.Option(help="where the dev server keeps its SQLite database and logs")
    ] = None,
    port: Annotated[int, typer.Option(help="Temporal gRPC port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal web UI port")] = 8233,
) -> None:
    """Start the embedded stack: Temporal dev server with the web UI and shiprail's search
    attributes, plus a worker. Ctrl-C stops both."""
    from shiprail.devstack.temporal import TemporalDevServer

    state = (state_dir or default_state_dir()) / "temporal"
    server = TemporalDevServer(state, port=port, ui_port=ui_port)
    server.start()
    try:
        out.print(f"Temporal dev server at [bold]{server.address}[/] (state in {state})")
        out.print(f"Web UI: [link={server.ui_url}]{server.ui_url}[/link]")
        run(
            _run_worker(
                server.address,
                ready=lambda: out.print(f"Worker on task queue '{TASK_QUEUE}'. Press Ctrl-C to stop."),
            )
        )
    except KeyboardInterrupt:
        out.print("stopping…")
    finally:
        server.stop()


def worker(
    address: Annotated[
        str | None, typer.Option(help="Temporal address; default from TEMPORAL_ADDRESS or profile")
    ] = None,
    task_queue: Annotated[str, typer.Option(help="task queue to poll")] = TASK_QUEUE,
) -> None:
    """Run a worker on task queue `shiprail` against any Temporal (env config applies)."""
    try:
        run(
            _run_worker(
                address, task_queue, ready=lambda: out.print(f"worker polling task queue '{task_queue}'")
            )
        )
    except KeyboardInterrupt:
        out.print("worker stopped")


async def _run_worker(
    address: str | None, task_queue: str = TASK_QUEUE, *, ready: Callable[[], None] = lambda: None
) -> None:
    from shiprail.worker import running_worker

    client = await connect(address)
    async with running_worker(client, task_queue=task_queue):
        ready()
        await asyncio.Event().wait()


def register(app: typer.Typer) -> None:
    app.command("dev")(dev)
    app.command("worker")(worker)
