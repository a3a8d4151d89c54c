"""The status table shown by `status` and by `--watch`."""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from shiprail.status import GateStatus, Phase, RolloutStatus

_PHASE_STYLE = {
    Phase.SUCCEEDED: "green",
    Phase.ROLLED_BACK: "yellow",
    Phase.ROLLBACK_FAILED: "bold red",
    Phase.FAILED: "red",
    Phase.ROLLING_BACK: "yellow",
    Phase.PAUSED: "cyan",
    Phase.AWAITING_APPROVAL: "magenta",
    Phase.WAITING_WINDOW: "blue",
}


_GATE_MARK = {"pass": ("✓", "green"), "fail": ("✗", "red"), "pending": ("…", "cyan")}


def _gate_line(gate: GateStatus) -> Text:
    """One line per gate: a pass shows its measurement, anything else its reason.

    A sequential gate that has not rejected is "pending", never ✓: a reader takes ✓ for
    healthy, and a canary failing 12 % of its requests is not healthy just because the
    test has not yet seen enough of them.
    """
    mark, colour = _GATE_MARK.get(gate.shown, ("?", "yellow"))
    line = Text(f"{mark} ", style=colour)
    line.append(gate.name, style="bold")
    if gate.shown == "pending":
        line.append(f" pending, no evidence of harm yet: {gate.reason}", style=colour)
    elif gate.status == "pass":
        value = f" {gate.value:.3g}" if gate.value is not None else ""
        line.append(f"{value} {gate.threshold}".rstrip())
    else:
        line.append(f" {gate.status}: {gate.reason}" if gate.reason else f" {gate.status}", style=colour)
    return line


def status_table(status: RolloutStatus, link: str | None = None) -> Group:
    style = _PHASE_STYLE.get(status.phase, "bold")
    header = Text.from_markup(
        f"[bold]{escape(status.id)}[/] ({escape(status.plan)}) [{style}]{status.phase.value}[/]"
    )
    if status.reason:
        header.append(f" — {status.reason}")
    table = Table(show_edge=False, pad_edge=False)
    for column in ("wave", "service", "version", "step", "weight", "", "state", "gates"):
        table.add_column(column, no_wrap=column != "gates")
    for s in status.services:
        step = f"{s.step}/{len(s.steps)}" if s.step else f"–/{len(s.steps)}"
        gates = Text("\n").join(_gate_line(g) for g in s.gates)
        table.add_row(
            str(s.wave),
            s.name,
            s.version,
            step,
            f"{s.weight:g}%",
            ProgressBar(total=100, completed=s.weight, width=12),
            s.state.value + (f" {s.note}" if s.note else ""),
            gates if gates.plain else Text("–"),
        )
    parts: list[Text | Table] = [header, table]
    if status.lock_holder:
        parts.append(Text(f"waiting for a service lock held by {status.lock_holder}", style="yellow"))
    if status.unrestored:
        parts.append(Text(f"NOT restored: {', '.join(status.unrestored)}", style="bold red"))
    if link:
        parts.append(Text(f"web UI: {link}", style="dim"))
    return Group(*parts)
