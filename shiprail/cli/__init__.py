"""The `shiprail` command line."""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from shiprail.cli import plan as plan_cmd
from shiprail.cli._console import err
from shiprail.errors import ExitCode, ShiprailError
from shiprail.plan import PlanError

app = typer.Typer(
    name="shiprail",
    help="Progressive delivery across dependent services, with metric gates and compensating rollbacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(plan_cmd.app, name="plan")


def _register_commands() -> None:
    # Imported here so `shiprail plan check` stays fast and works without Temporal.
    from shiprail.cli import demo, rollout, stack

    rollout.register(app)
    stack.register(app)
    demo.register(app)


def main() -> None:
    """Console-script entry point: user errors become a message and an exit code."""
    _register_commands()
    try:
        app()
    except PlanError as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/]: {escape(str(issue))}")
        err.print(f"{len(exc.issues)} problem{'s' if len(exc.issues) != 1 else ''} found")
        sys.exit(ExitCode.BAD_INPUT)
    except ShiprailError as exc:
        err.print(f"[red]error[/]: {escape(exc.message)}")
        if exc.hint:
            err.print(f"hint: {escape(exc.hint)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # never a traceback for the user, unless asked for
        if os.environ.get("SHIPRAIL_DEBUG"):
            raise
        err.print(
            f"[red]internal error[/]: {type(exc).__name__}: {escape(str(exc))} (set SHIPRAIL_DEBUG=1 for details)"
        )
        sys.exit(ExitCode.ROLLOUT_FAILED)
