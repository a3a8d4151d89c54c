"""`shiprail train …`: release trains on Temporal Schedules."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shiprail import train_client
from shiprail.cli._console import out, print_json
from shiprail.cli._signals import run
from shiprail.cli.keys import signing_key, with_keyring
from shiprail.cli.rollout import Address, AsJson, actor, connect_cli, ui_base
from shiprail.errors import BadInput
from shiprail.plan.loader import load_plan, load_train

app = typer.Typer(help="Release trains: a cadence that departs boarded plans together.", no_args_is_help=True)

TrainName = Annotated[
    str, typer.Argument(help="the train's metadata.name", show_default=False, metavar="TRAIN")
]


def _when(iso: str, zone: zoneinfo.ZoneInfo) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(zone):%a %Y-%m-%d %H:%M:%S %Z}"


@app.command("create")
def create(
    train_path: Annotated[
        Path, typer.Argument(help="the train file (YAML)", show_default=False, metavar="FILE")
    ],
    address: Address = None,
) -> None:
    """Create the train's Schedule (`train-<name>`), or update it to match the file."""
    train = with_keyring(load_train(train_path), str(train_path))

    async def go() -> str:
        return await train_client.create_train(await connect_cli(address), train, actor(), key=signing_key())

    done = run(go())
    name = train.metadata.name
    out.print(f"{done} release train [bold]{name}[/] (schedule {train_client.schedule_id(name)})")
    out.print(f"schedules: {ui_base(address)}/schedules/{train_client.schedule_id(name)}")


@app.command("list")
def list_trains(as_json: AsJson = False, address: Address = None) -> None:
    """Every release train, with its next departure."""

    async def go() -> list[dict[str, Any]]:
        return await train_client.list_trains(await connect_cli(address))

    rows = run(go())
    if as_json:
        print_json(rows)
        return
    table = Table("train", "paused", "next departure (UTC)")
    for row in rows:
        table.add_row(row["name"], "yes" if row["paused"] else "", row["next"] or "–")
    out.print(table if rows else "no release trains")


@app.command("show")
def show(name: TrainName, as_json: AsJson = False, address: Address = None) -> None:
    """Next departures with their cut-offs, boarded cars, and the last departures."""

    async def go() -> dict[str, Any]:
        client = await connect_cli(address)
        description, state = await train_client.describe(client, name)
        return train_client.show_document(name, description, state)

    document = run(go())
    if as_json:
        print_json(document)
        return
    zone = zoneinfo.ZoneInfo(document["timezone"])
    paused = f" — [yellow]paused[/]: {document['note']}" if document["paused"] else ""
    out.print(
        f"train [bold]{name}[/] ({document['timezone']}, overlap {document['overlap']},"
        f" on_failure {document['on_failure']}){paused}"
    )
    if document["running"]:
        out.print(f"departing now: {', '.join(document['running'])}")
    if document["skipped_by_overlap"]:
        out.print(
            f"[yellow]{document['skipped_by_overlap']} departure(s) skipped[/]: the previous one was still running"
            " (overlap: skip); their cars go on the next departure"
        )
    if document["missed_catchup_window"]:
        out.print(f"{document['missed_catchup_window']} departure(s) missed: later than the catch-up window")
    table = Table("departs", "boarding closes", title="next departures", title_justify="left")
    for row in document["next"][:5]:
        table.add_row(_when(row["departs"], zone), _when(row["cutoff"], zone))
    out.print(table)
    for skip in document["skipped"]:
        out.print(f"  skipped: {_when(skip['departs'], zone)} — {skip['reason']} ({skip['by']})")
    cars = Table("car", "depends on", "departs", title="boarded", title_justify="left")
    for car in document["boarded"]:
        cars.add_row(car["car"], ", ".join(car["depends_on"]) or "–", _when(car["departs"], zone))
    out.print(cars if document["boarded"] else "boarded: none")
    for departure in document["departures"][:5]:
        out.print(
            f"departure {_when(departure['scheduled'], zone)}: [bold]{departure['outcome']}[/] {departure['reason']}"
        )
        for car in departure["cars"]:
            note = (
                f"  {car['note']}" if car["note"] and car["phase"] not in ("skipped", "not_started") else ""
            )
            out.print(
                f"  {car['car']:<24} {car['outcome']:<32} {car['rollout_id'] or ''}{note}", markup=False
            )


@app.command("board")
def board(
    name: TrainName,
    plan_path: Annotated[Path, typer.Argument(help="the plan file", show_default=False, metavar="PLAN")],
    depends_on: Annotated[
        list[str] | None, typer.Option("--depends-on", help="a car that must succeed first (repeatable)")
    ] = None,
    address: Address = None,
) -> None:
    """Board a plan on the next departure whose cut-off has not passed."""
    plan = with_keyring(load_plan(plan_path), str(plan_path))

    async def go() -> train_client.Boarding:
        return await train_client.board(
            await connect_cli(address), name, plan, list(depends_on or []), actor(), key=signing_key()
        )

    boarding = run(go())
    if boarding.missed is not None:
        out.print(
            f"boarding for the departure at {_local(boarding.missed, boarding)} has closed;"
            " the car goes on the following departure"
        )
    out.print(
        f"boarded [bold]{boarding.car.car}[/] on train {name}: departs {_local(boarding.car.departure, boarding)}"
        f" (boarding closes {_local(boarding.cutoff, boarding)})"
    )


def _local(moment: datetime, boarding: train_client.Boarding) -> str:
    return f"{_when(moment.isoformat(), boarding.zone)} ({boarding.zone.key})"


@app.command("unboard")
def unboard(
    name: TrainName,
    car: Annotated[str, typer.Argument(help="the car (its plan's name)", show_default=False, metavar="CAR")],
    reason: Annotated[str | None, typer.Option(help="why (recorded)")] = None,
    address: Address = None,
) -> None:
    """Take a car off the train before its departure's cut-off."""

    async def go() -> str:
        return await train_client.unboard(
            await connect_cli(address), name, car, actor(), reason or "", key=signing_key()
        )

    out.print(run(go()))


@app.command("pause")
def pause(
    name: TrainName,
    reason: Annotated[str | None, typer.Option(help="why (shown in `train show` and the web UI)")] = None,
    address: Address = None,
) -> None:
    """Stop departures until `train resume`."""
    if not reason:
        raise BadInput("`train pause` needs --reason: it is shown in `train show` and the web UI")

    async def go() -> None:
        await train_client.pause(await connect_cli(address), name, reason, actor(), key=signing_key())

    run(go())
    out.print(f"paused train {name}: {reason}")


@app.command("resume")
def resume(
    name: TrainName, reason: Annotated[str | None, typer.Option(help="note")] = None, address: Address = None
) -> None:
    """Let a paused train depart again."""

    async def go() -> None:
        await train_client.resume(await connect_cli(address), name, reason or "", actor(), key=signing_key())

    run(go())
    out.print(f"resumed train {name}")


@app.command("skip")
def skip(
    name: TrainName,
    next_: Annotated[bool, typer.Option("--next", help="skip the next departure")] = False,
    on: Annotated[
        str | None,
        typer.Option("--date", help="skip every departure on this date (YYYY-MM-DD, train's zone)"),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="why (shown in `train show`)")] = None,
    address: Address = None,
) -> None:
    """Skip one departure (or one day's); its cars go on the following one."""
    if next_ == (on is not None):
        raise BadInput("`train skip` needs exactly one of --next or --date YYYY-MM-DD")
    if not reason:
        raise BadInput("`train skip` needs --reason: it is shown in `train show`")
    day = None
    if on is not None:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            raise BadInput(f"--date {on!r} is not a date (YYYY-MM-DD)") from None

    async def go() -> list[datetime]:
        client = await connect_cli(address)
        departs = await train_client.departures_to_skip(client, name, day=day)
        await train_client.skip(client, name, departs, reason, actor(), key=signing_key())
        return departs

    for moment in run(go()):
        out.print(f"skipping the departure at {moment.isoformat()}: {reason}")


@app.command("trigger")
def trigger(name: TrainName, address: Address = None) -> None:
    """Depart now with the cars booked on the next departure, honouring `overlap`."""

    async def go() -> str:
        return await train_client.trigger(await connect_cli(address), name, actor(), key=signing_key())

    done = run(go())
    if done == "buffered":
        out.print(
            f"train {name}: a departure is running; this one departs when it ends (overlap: buffer_one)"
        )
    else:
        out.print(f"train {name} departs now")


@app.command("delete")
def delete(name: TrainName, address: Address = None) -> None:
    """Delete the train's Schedule and its boarding; a running departure finishes."""

    async def go() -> int:
        return await train_client.delete(await connect_cli(address), name, actor(), key=signing_key())

    dropped = run(go())
    out.print(f"deleted train {name} ({dropped} boarded car{'s' if dropped != 1 else ''} dropped)")
