"""`shiprail gates eval` and the dry run behind `plan check --prometheus`."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shiprail.cli._console import err, out, print_json
from shiprail.cli._signals import run
from shiprail.errors import BadInput, ExitCode, Unreachable
from shiprail.gates import PrometheusSource
from shiprail.gates.dryrun import DryRunRow, evaluate_plan, pick_services
from shiprail.gates.prometheus import SETTLE
from shiprail.plan import RolloutPlan, load_plan
from shiprail.plan.durations import parse_duration
from shiprail.plan.resolve import ServiceSettings

app = typer.Typer(
    help="Evaluate gates against live Prometheus without rolling anything.", no_args_is_help=True
)

_MARK = {"pass": "[green]✓ pass[/]", "fail": "[red]✗ fail[/]", "inconclusive": "[yellow]? inconclusive[/]"}
_PENDING = "[cyan]… pending[/]"


def prometheus_source(plan: RolloutPlan, url: str | None) -> PrometheusSource:
    chosen = url or (plan.spec.prometheus.url if plan.spec.prometheus else None)
    chosen = chosen or os.environ.get("SHIPRAIL_PROMETHEUS_URL")
    if not chosen:
        raise BadInput(
            "no Prometheus to ask: pass --prometheus URL, set spec.prometheus.url or SHIPRAIL_PROMETHEUS_URL"
        )
    timeout = plan.spec.prometheus.timeout if plan.spec.prometheus else timedelta(seconds=10)
    source = PrometheusSource(chosen, timeout)
    problem = source.check_ready()
    if problem:
        raise Unreachable(problem)
    return source


_UNIX_SECONDS = re.compile(r"\d{9,}(\.\d+)?")


def parse_at(value: str | None) -> datetime:
    """`--at`: an ISO 8601 time (UTC unless it says otherwise), Unix seconds as Prometheus
    takes them (`1733140800`, `1733140800.5`), or a duration ago (`15m`).

    Without it, the latest instant Prometheus has every scrape of, as a rollout's gates use.
    """
    now = datetime.now(UTC)
    if not value:
        return now - SETTLE
    if _UNIX_SECONDS.fullmatch(value.strip()):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"--at: {value!r} is neither an ISO 8601 time, Unix seconds, nor a duration such as 15m"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stable_versions(services: list[ServiceSettings], given: str | None) -> dict[str, str]:
    """What `{{stable_version}}` means for each service: given, or read from its actuator."""
    if given:
        return {s.name: given for s in services}
    from shiprail.actuators import for_config
    from shiprail.actuators.http import close_sessions

    async def read(s: ServiceSettings) -> tuple[str, str]:
        try:
            exposure = await for_config(s.actuator).read(s.name)
        except Exception as exc:  # a dry run goes on without a baseline, and says so
            err.print(
                f"[yellow]warning[/]: cannot read {s.name}'s stable version from its actuator"
                f" ({escape(str(exc))}); compare gates see no baseline (use --stable-version)"
            )
            return s.name, ""
        return s.name, exposure.stable_version or ""

    async def read_all() -> list[tuple[str, str]]:
        try:
            return await asyncio.gather(*(read(s) for s in services))
        finally:
            await close_sessions()

    return dict(run(read_all()))


def run_dry_run(
    plan: RolloutPlan,
    prometheus: str | None,
    *,
    services: list[str],
    at: datetime,
    stable_version: str | None = None,
    weight: float | None = None,
    since: timedelta | None = None,
) -> list[DryRunRow]:
    source = prometheus_source(plan, prometheus)
    try:
        chosen = pick_services(plan, services)
    except ValueError as exc:
        raise BadInput(f"--service: {exc}") from None
    versions = stable_versions([s for s in chosen if s.gates], stable_version)
    return evaluate_plan(plan, chosen, source, at=at, stable_versions=versions, weight=weight, since=since)


def print_rows(rows: list[DryRunRow], at: datetime) -> None:
    table = Table(title=f"Gates evaluated at {at:%Y-%m-%d %H:%M:%S} UTC", title_justify="left")
    for column in ("gate", "service", "value", "bound", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        v = row.verdict
        value = "–" if v.value is None else f"{v.value:.4g}"
        table.add_row(
            v.gate,
            row.service,
            value,
            escape(v.threshold),
            _PENDING if v.pending and v.status.value == "pass" else _MARK[v.status.value],
            escape(v.reason),
        )
    out.print(table if rows else "no gates to evaluate")


def exit_code(rows: list[DryRunRow]) -> int:
    """2 when Prometheus rejected a query (the plan needs fixing), else 0."""
    for row in rows:
        for query, error in row.query_errors.items():
            if row.rejected:
                err.print(
                    f"[red]error[/]: gate {row.verdict.gate} on {row.service} ({query}): {escape(error)}"
                )
    return ExitCode.BAD_INPUT if any(r.rejected for r in rows) else ExitCode.OK


@app.command("eval")
def eval_gates(
    plan_path: Annotated[Path, typer.Argument(help="the plan file", show_default=False, metavar="PLAN")],
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="only this service (repeatable; default: all)")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="evaluate at this time: ISO 8601, or a duration ago such as 15m")
    ] = None,
    prometheus: Annotated[
        str | None,
        typer.Option(help="Prometheus URL (default: spec.prometheus.url, SHIPRAIL_PROMETHEUS_URL)"),
    ] = None,
    stable_version: Annotated[
        str | None, typer.Option(help="baseline version for compare gates (default: read from the actuator)")
    ] = None,
    weight: Annotated[
        float | None, typer.Option(help="canary weight to assume (default: the service's first step)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="how long ago the step began (default: the service's bake)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Run every gate of the plan once against live Prometheus and show each verdict."""
    plan = load_plan(plan_path)
    when = parse_at(at)
    try:
        began = parse_duration(since) if since else None
    except ValueError as exc:
        raise BadInput(f"--since: {exc}") from None
    rows = run_dry_run(
        plan,
        prometheus,
        services=service or [],
        at=when,
        stable_version=stable_version,
        weight=weight,
        since=began,
    )
    if as_json:
        print_json({"at": when.isoformat(), "gates": [r.to_dict() for r in rows]})
    else:
        print_rows(rows, when)
    raise typer.Exit(exit_code(rows))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="gates")
