"""`shiprail plan check` and `shiprail plan schema`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shiprail.cli._console import out, print_json
from shiprail.errors import BadInput
from shiprail.plan import (
    PlanError,
    RolloutPlan,
    Schedule,
    build_schedule,
    format_duration,
    resolve_services,
)
from shiprail.plan.loader import load_document
from shiprail.plan.train import ReleaseTrain

app = typer.Typer(help="Validate plans and print their JSON Schema.", no_args_is_help=True)

PlanPath = Annotated[Path, typer.Argument(help="the plan file (YAML)", show_default=False)]


def _plan_summary(plan: RolloutPlan, schedule: Schedule) -> dict[str, Any]:
    return {
        "valid": True,
        "plan": plan.metadata.name,
        "owner": plan.metadata.owner,
        "ticket": plan.metadata.ticket,
        "lockstep": plan.spec.lockstep,
        "waves": schedule.waves,
        "services": [
            {
                "name": s.name,
                "version": s.version,
                "wave": s.wave + 1,
                "steps": s.steps,
                "bake": format_duration(s.bake),
                "interval": format_duration(s.interval),
                "gates": s.gates,
                "approval": s.approval,
            }
            for s in resolve_services(plan)
        ],
        "schedule": [
            {
                "service": st.service,
                "wave": st.wave + 1,
                "step": st.index + 1,
                "weight": st.weight,
                "start": format_duration(st.start),
                "bake": format_duration(st.bake),
            }
            for st in sorted(schedule.steps, key=lambda st: (st.start, st.wave, st.service))
        ],
        "shortest_duration": format_duration(schedule.total),
        "shortest_duration_seconds": schedule.total.total_seconds(),
        "needs_approval": schedule.needs_approval,
    }


def _print_summary(path: Path, summary: dict[str, Any]) -> None:
    out.print(
        f"[green]✓[/] {path}: plan [bold]{summary['plan']}[/] is valid "
        f"({len(summary['services'])} services, {len(summary['waves'])} waves"
        f"{', lockstep' if summary['lockstep'] else ''})"
    )
    for index, wave in enumerate(summary["waves"], start=1):
        out.print(f"  wave {index}: {', '.join(wave)}")
    table = Table(
        title="Step schedule (shortest: every gate passes at the end of every bake)", title_justify="left"
    )
    for column in ("start", "wave", "service", "step", "weight", "bake"):
        table.add_column(column, justify="right" if column in {"start", "weight", "bake"} else "left")
    steps_of = {s["name"]: len(s["steps"]) for s in summary["services"]}
    for st in summary["schedule"]:
        table.add_row(
            st["start"],
            str(st["wave"]),
            st["service"],
            f"{st['step']}/{steps_of[st['service']]}",
            f"{st['weight']:g}%",
            st["bake"],
        )
    out.print(table)
    approvals = " + time waiting for approvals" if summary["needs_approval"] else ""
    out.print(f"Shortest total duration: [bold]{summary['shortest_duration']}[/]{approvals}")


@app.command("check")
def check(
    plan_path: PlanPath,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    prometheus: Annotated[
        str | None,
        typer.Option(help="also run every gate once against this Prometheus (dry run)", show_default=False),
    ] = None,
) -> None:
    """Validate a plan; print its waves and step schedule. Exit 2 listing every problem.

    With --prometheus, every gate query also runs once against live Prometheus; a query
    Prometheus rejects is reported with its own message and exits 2."""
    try:
        document = load_document(plan_path)
    except PlanError as exc:
        if as_json:
            print_json({"valid": False, "issues": [i.to_dict() for i in exc.issues]})
            raise typer.Exit(2) from None
        raise
    if isinstance(document, ReleaseTrain):
        _check_train(plan_path, document, as_json)
        return
    plan = document
    summary = _plan_summary(plan, build_schedule(plan))
    if prometheus is None:
        if as_json:
            print_json(summary)
        else:
            _print_summary(plan_path, summary)
        return
    from shiprail.cli.gates import exit_code, parse_at, print_rows, run_dry_run

    at = parse_at(None)
    rows = run_dry_run(plan, prometheus, services=[], at=at)
    if as_json:
        print_json({**summary, "dry_run": {"at": at.isoformat(), "gates": [r.to_dict() for r in rows]}})
    else:
        _print_summary(plan_path, summary)
        print_rows(rows, at)
    raise typer.Exit(exit_code(rows))


def _check_train(path: Path, train: ReleaseTrain, as_json: bool) -> None:
    spec = train.spec
    schedule = spec.schedule
    summary = {
        "valid": True,
        "train": train.metadata.name,
        "kind": "ReleaseTrain",
        "timezone": schedule.timezone,
        "cron": schedule.cron,
        "every": format_duration(schedule.every) if schedule.every else None,
        "jitter": format_duration(schedule.jitter),
        "cutoff": format_duration(spec.cutoff),
        "overlap": spec.overlap,
        "catchup_window": format_duration(spec.catchup_window),
        "on_failure": spec.on_failure,
        "parallel": spec.parallel,
        "windows": spec.windows is not None,
        "budget_policy": spec.budget_policy is not None,
    }
    if as_json:
        print_json(summary)
        return
    cadence = ", ".join([*schedule.cron, *([f"every {summary['every']}"] if schedule.every else [])])
    out.print(f"[green]✓[/] {path}: release train [bold]{train.metadata.name}[/] is valid")
    out.print(f"  departs: {cadence} ({schedule.timezone}), jitter {summary['jitter']}")
    out.print(
        f"  boarding closes {summary['cutoff']} before each departure; overlap: {spec.overlap};"
        f" catch-up window {summary['catchup_window']}"
    )
    out.print(
        f"  a failed car: {spec.on_failure}; independent cars {'together' if spec.parallel else 'one by one'}"
    )
    if spec.windows:
        out.print(f"  deploy windows apply to every car (see `shiprail windows show {path}`)")


@app.command("schema")
def schema(
    kind: Annotated[
        str, typer.Option(help="RolloutPlan or ReleaseTrain", case_sensitive=False)
    ] = "RolloutPlan",
) -> None:
    """Print the JSON Schema of rollout plans (or, with --kind ReleaseTrain, of trains)."""
    models: dict[str, Any] = {"rolloutplan": RolloutPlan, "releasetrain": ReleaseTrain}
    model = models.get(kind.lower())
    if model is None:
        raise BadInput(f"--kind {kind!r}: expected RolloutPlan or ReleaseTrain")
    document = model.model_json_schema(by_alias=True, mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = f"shiprail {model.__name__} (apiVersion shiprail/v1)"
    out.file.write(json.dumps(document, indent=2) + "\n")
