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
    from temporalio.client import Client

    from shiprail.demo.stack import DemoStack
    from shiprail.plan import RolloutPlan
    from shiprail.train_status import DepartureRecord

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
    router: Annotated[
        str,
        typer.Option(
            help="what moves the traffic: http (the fleet's router API) or haproxy (the real HAProxy)"
        ),
    ] = "http",
) -> None:
    """Dev stack + Prometheus + the demo fleet + a rollout, with live progress and the UI link."""
    from shiprail.demo.stack import DemoStack

    plan = load_plan(plan_path)
    root = (state_dir or default_state_dir()) / "demo" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    stack = DemoStack(plan, scenario, root, rps=rps, temporal_port=port, ui_port=ui_port, router=router)
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

    plan = stack.plan
    client = await connect(stack.temporal.address, runtime=quiet_runtime())
    ui = stack.temporal.ui_url
    out.print(f"Temporal web UI:  {ui}")
    out.print(
        f"Prometheus:       {stack.prometheus.url}  (scraping {len(stack.fleet.services)} services every 1s)"
    )
    out.print(f"router API:       {stack.fleet.router_url}")
    async with running_worker(client):
        from shiprail.demo.scenarios import SCENARIOS

        if SCENARIOS[scenario].train:
            code = await _run_train(client, plan, ui or "")
            if not exit_at_end:
                out.print("the stack keeps running (the train departs every 30s) — Ctrl-C to stop")
                await asyncio.Event().wait()
            return code
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


async def _run_train(client: Client, plan: RolloutPlan, ui: str) -> int:
    """Create the demo train, board the plan as two dependent cars, and show the departure
    that carries them until it ends."""
    from rich.live import Live
    from rich.table import Table

    from shiprail import train_client
    from shiprail.demo.train import TRAIN_NAME, demo_cars, demo_train

    await train_client.create_train(client, demo_train(), "demo")
    out.print(
        f"release train [bold]{TRAIN_NAME}[/]: {ui}/namespaces/{client.namespace}/schedules/train-{TRAIN_NAME}"
    )
    departs = None
    for car, depends_on in demo_cars(plan):
        boarding = await train_client.board(client, TRAIN_NAME, car, depends_on, "demo")
        departs = boarding.car.departure
        after = f" after {', '.join(depends_on)}" if depends_on else ""
        out.print(f"boarded {car.metadata.name} ({', '.join(s.name for s in car.spec.services)}){after}")
    assert departs is not None
    out.print(f"departure at {departs:%H:%M:%S} UTC")

    def view(record: DepartureRecord | None) -> Table:
        table = Table(
            "car",
            "rollout",
            "outcome",
            title=f"train {TRAIN_NAME}: {record.outcome if record else 'boarding'}",
        )
        for c in record.cars if record else []:
            table.add_row(c.car, c.rollout_id or "–", c.outcome)
        return table

    record: DepartureRecord | None = None
    with Live(view(None), console=out, refresh_per_second=2) as live:
        while record is None or record.outcome == "running":
            await asyncio.sleep(1)
            state = await train_client.manifest(client, TRAIN_NAME)
            record = next(
                (d for d in state.departures if abs((d.scheduled - departs).total_seconds()) < 1), None
            )
            live.update(view(record))
    out.print(f"departure ended [bold]{record.outcome}[/]: {record.reason}")
    for c in record.cars:
        if c.rollout_id:
            out.print(f"  {c.car}: {ui}/namespaces/{client.namespace}/workflows/{c.rollout_id}")
    return ExitCode.OK if record.outcome == "succeeded" else ExitCode.ROLLOUT_FAILED


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
