"""`shiprail demo`: the embedded stack, the demo fleet and one rollout you can watch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shiprail.cli._console import out
from shiprail.cli._signals import run
from shiprail.cli.rollout import _watch, start_rollout
from shiprail.cli.stack import default_state_dir
from shiprail.client import connect, quiet_runtime
from shiprail.demo.scenarios import LOAD_RPS
from shiprail.errors import ExitCode
from shiprail.plan import load_plan
from shiprail.status import Phase

if TYPE_CHECKING:
    from shiprail.demo.stack import DemoStack

DEFAULT_PLAN = Path(__file__).resolve().parents[2] / "examples" / "demo-plan.yaml"


def _scenario_help() -> str:
    from shiprail.demo.scenarios import SCENARIOS

    return "; ".join(f"{s.name}: {s.summary}" for s in SCENARIOS.values())


def demo(
    scenario: Annotated[str, typer.Option(help=_scenario_help())] = "good",
    plan_path: Annotated[Path, typer.Option("--plan", help="the plan to roll out")] = DEFAULT_PLAN,
    exit_at_end: Annotated[
        bool,
        typer.Option("--exit", help="stop everything when the rollout ends; exit 0 only if it succeeded"),
    ] = False,
    rps: Annotated[float, typer.Option(help="requests per second the load generator sends")] = LOAD_RPS,
    state_dir: Annotated[Path | None, typer.Option(help="where the servers keep their data")] = None,
    port: Annotated[int, typer.Option(help="Temporal gRPC port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal web UI port")] = 8233,
) -> None:
    """Dev stack + Prometheus + the demo fleet + a rollout, with live progress and the UI link."""
    from shiprail.demo.stack import DemoStack

    plan = load_plan(plan_path)
    root = (state_dir or default_state_dir()) / "demo" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    stack = DemoStack(plan, scenario, root, rps=rps, temporal_port=port, ui_port=ui_port)
    out.print(f"starting Temporal, Prometheus and the demo fleet (scenario [bold]{scenario}[/]) …")
    stack.start()
    try:
        code = run(_run(stack, plan_path, scenario, exit_at_end))
    except KeyboardInterrupt:
        code = 130
    finally:
        out.print("stopping the demo stack …")
        stack.stop()
    raise typer.Exit(code)


async def _run(stack: DemoStack, plan_path: Path, scenario: str, exit_at_end: bool) -> int:
    from shiprail.worker import running_worker

    plan = load_plan(plan_path)
    client = await connect(stack.temporal.address, runtime=quiet_runtime())
    ui = stack.temporal.ui_url
    out.print(f"Temporal web UI:  {ui}")
    out.print(
        f"Prometheus:       {stack.prometheus.url}  (scraping {len(stack.fleet.services)} services every 1s)"
    )
    out.print(f"router API:       {stack.fleet.router_url}")
    async with running_worker(client):
        rollout_id = f"demo-{scenario}-{datetime.now(UTC):%H%M%S}"
        handle = await start_rollout(client, plan, rollout_id)
        link = f"{ui}/namespaces/{client.namespace}/workflows/{rollout_id}"
        out.print(f"started rollout [bold]{rollout_id}[/] of {plan_path.name}")
        status = await _watch(handle, link)
        out.print()
        out.print(f"rollout ended [bold]{status.phase.value}[/]: {status.reason}")
        for name, exposure in stack.fleet.exposures().items():
            canary = (
                f", canary {exposure.canary_version} at {exposure.weight:g}%"
                if exposure.canary_version
                else ""
            )
            out.print(f"  router {name}: stable {exposure.stable_version}{canary}")
        code = ExitCode.OK if status.phase is Phase.SUCCEEDED else ExitCode.ROLLOUT_FAILED
        if not exit_at_end:
            out.print(f"the stack keeps running: open {link}  — Ctrl-C to stop")
            await asyncio.Event().wait()
        return code


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
