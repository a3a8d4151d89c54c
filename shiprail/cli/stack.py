"""`shiprail dev` and `shiprail worker`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import platformdirs
import typer

from shiprail.cli._console import out
from shiprail.cli._signals import run
from shiprail.client import TASK_QUEUE, connect

if TYPE_CHECKING:
    from shiprail.codec_server import CodecServer


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
    codec = _codec_server(ui_port)
    extra = ["--ui-codec-endpoint", codec.url] if codec else []
    server = TemporalDevServer(state, port=port, ui_port=ui_port, extra_args=extra)
    server.start()
    try:
        out.print(f"Temporal dev server at [bold]{server.address}[/] (state in {state})")
        out.print(f"Web UI: [link={server.ui_url}]{server.ui_url}[/link]")
        if codec:
            out.print(f"History is sealed; the UI decodes it through the codec server at {codec.url}")
        run(
            _run_worker(
                server.address,
                ready=lambda: out.print(f"Worker on task queue '{TASK_QUEUE}'. Press Ctrl-C to stop."),
                stopping=lambda: out.print("stopping… (the worker first finishes its shutdown)"),
            )
        )
    except KeyboardInterrupt:
        out.print("stopping the dev server…")
    finally:
        server.stop()
        if codec:
            codec.stop()


def _codec_server(ui_port: int) -> CodecServer | None:
    """With codec keys configured, the dev UI gets a codec server of its own."""
    import threading

    from shiprail.codec import Keyring
    from shiprail.codec_server import CodecServer

    keyring = Keyring.from_environment()
    if keyring is None:
        return None
    origins = {f"http://localhost:{ui_port}", f"http://127.0.0.1:{ui_port}"}
    server = CodecServer(keyring, port=0, origins=origins, token=os.environ.get("SHIPRAIL_CODEC_TOKEN"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


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
                address,
                task_queue,
                ready=lambda: out.print(f"worker polling task queue '{task_queue}'"),
                stopping=lambda: out.print("stopping the worker…"),
            )
        )
    except KeyboardInterrupt:
        out.print("worker stopped")


async def _run_worker(
    address: str | None,
    task_queue: str = TASK_QUEUE,
    *,
    ready: Callable[[], None] = lambda: None,
    stopping: Callable[[], None] = lambda: None,
) -> None:
    """Poll until cancelled. `stopping` is said at once: the worker's shutdown waits for its
    activities and long polls, and a silent pause after Ctrl-C reads as a hang."""
    from shiprail.worker import running_worker

    client = await connect(address)
    async with running_worker(client, task_queue=task_queue):
        ready()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping()
            raise


def register(app: typer.Typer) -> None:
    app.command("dev")(dev)
    app.command("worker")(worker)
