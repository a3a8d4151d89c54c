"""`shiprail windows show`: when a plan's or train's deploy windows open and close, and why."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shiprail.cli._console import out, print_json
from shiprail.errors import BadInput
from shiprail.plan.loader import load_document
from shiprail.plan.windows import Span, calendar

app = typer.Typer(help="Deploy windows: when steps may start.", no_args_is_help=True)


def _day_bar(spans: list[Span], day_start: datetime, zone: zoneinfo.ZoneInfo) -> str:
    """24 characters, one an hour: █ open all hour, ▒ open part of it, · closed."""
    bar = ""
    for hour in range(24):
        a = (day_start + timedelta(hours=hour)).astimezone(UTC)
        b = a + timedelta(hours=1)
        open_seconds = sum(
            (min(s.end, b) - max(s.start, a)).total_seconds()
            for s in spans
            if s.open and s.end > a and s.start < b
        )
        bar += "█" if open_seconds >= 3600 else ("▒" if open_seconds > 0 else "·")
    return bar


@app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="a plan or train file", show_default=False, metavar="FILE")],
    start: Annotated[
        str | None, typer.Option("--from", help="first day (YYYY-MM-DD, in the windows' zone; default today)")
    ] = None,
    days: Annotated[int, typer.Option(help="how many days", min=1, max=400)] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="print the spans as JSON")] = False,
) -> None:
    """Print when the windows of a plan or train open and close, and why, day by day."""
    document = load_document(path)
    windows = document.spec.windows
    zone = zoneinfo.ZoneInfo(windows.timezone if windows else "UTC")
    try:
        first = date.fromisoformat(start) if start else datetime.now(zone).date()
    except ValueError:
        raise BadInput(f"--from {start!r} is not a date (YYYY-MM-DD)") from None
    begin = datetime.combine(first, time(), zone)
    end = datetime.combine(first + timedelta(days=days), time(), zone)
    spans = calendar([windows] if windows else [], begin, end)
    if as_json:
        print_json([s.to_dict(zone) for s in spans])
        return
    kind = "train" if document.kind == "ReleaseTrain" else "plan"
    if windows is None:
        out.print(f"{kind} {document.metadata.name} has no deploy windows: steps may start at any time")
        return
    out.print(
        f"deploy windows of {kind} [bold]{document.metadata.name}[/] ({zone.key}); █ open · closed ▒ partly"
    )
    table = Table()
    table.add_column("day", no_wrap=True)
    table.add_column("0     6     12    18    ", no_wrap=True, min_width=24)
    table.add_column("open", no_wrap=True)
    table.add_column("closed because")
    for offset in range(days):
        day = first + timedelta(days=offset)
        day_start = datetime.combine(day, time(), zone)
        day_end = datetime.combine(day + timedelta(days=1), time(), zone)
        today = [s for s in spans if s.end > day_start and s.start < day_end]
        opened = [
            f"{max(s.start, day_start).astimezone(zone):%H:%M}–"
            + ("24:00" if s.end >= day_end else f"{s.end.astimezone(zone):%H:%M}")
            for s in today
            if s.open
        ]
        reasons = list(dict.fromkeys(s.reason for s in today if not s.open))
        table.add_row(
            f"{day:%a %Y-%m-%d}",
            _day_bar(today, day_start, zone),
            ", ".join(opened) or "–",
            "; ".join(reasons),
            style="dim" if not opened else None,
        )
    out.print(table)
