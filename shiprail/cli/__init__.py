"""The `shiprail` command line."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

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
    from shiprail.cli import demo, gates, rollout, stack

    rollout.register(app)
    gates.register(app)
    stack.register(app)
    demo.register(app)


def _stop_on_sigterm() -> None:
    """`kill` stops a command the way Ctrl-C does, so `dev` and `demo` take down the servers
    they started instead of orphaning them.

    SIGTERM runs whatever handles SIGINT at that moment rather than raising
    KeyboardInterrupt itself: inside `asyncio.run` that handler cancels the main task and
    the worker shuts down in order, whereas an exception raised at an arbitrary point in
    the event loop can kill one of the worker's own tasks and leave its shutdown waiting
    forever.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt  # SIGINT is ignored (a background job of a script): stop anyway


def main() -> None:
    """Console-script entry point: user errors become a message and an exit code."""
    _exit(run())


def run() -> int:
    """Run the command line; return its exit code (for callers that must not exit)."""
    _register_commands()
    _stop_on_sigterm()
    try:
        app()
    except SystemExit as done:  # typer ends every command, and every usage error, this way
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else ExitCode.ROLLOUT_FAILED)
    except PlanError as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/]: {escape(str(issue))}")
        err.print(f"{len(exc.issues)} problem{'s' if len(exc.issues) != 1 else ''} found")
        return ExitCode.BAD_INPUT
    except ShiprailError as exc:
        err.print(f"[red]error[/]: {escape(exc.message)}")
        if exc.hint:
            err.print(f"hint: {escape(exc.hint)}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # never a traceback for the user, unless asked for
        if os.environ.get("SHIPRAIL_DEBUG"):
            raise
        err.print(
            f"[red]internal error[/]: {type(exc).__name__}: {escape(str(exc))} (set SHIPRAIL_DEBUG=1 for details)"
        )
        return ExitCode.ROLLOUT_FAILED
    return ExitCode.OK


def _exit(code: int) -> NoReturn:
    """Leave without interpreter finalization once a Temporal client was created.

    The SDK's native runtime keeps threads that can abort the process while Python
    tears itself down (temporalio/sdk-python#300): a finished command would then die
    with SIGABRT instead of its exit code. Everything the command owns has been stopped
    by now, so only the output needs flushing.
    """
    if "temporalio.bridge.runtime" not in sys.modules:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
