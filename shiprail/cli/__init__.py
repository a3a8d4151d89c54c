"""The `shiprail` command line."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer
from rich.markup import escape

from shiprail.cli import plan as plan_cmd
from shiprail.cli._console import err
from shiprail.cli._signals import dump_stacks_on_sigusr1, stop_on_sigterm
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


# Which module adds each top-level command, in the order `--help` lists them. A command
# imports only its own module: the Temporal client alone takes seconds to import, and a
# script that runs `shiprail status` in a loop should not also pay for the demo fleet.
_MODULES: dict[str, tuple[str, ...]] = {
    "rollout": ("start", "status", "list", "pause", "resume", "approve", "abort", "override", "audit"),
    "stack": ("dev", "worker"),
    "demo": ("demo",),
    "codec": ("codec-server",),
    "train": ("train",),
    "windows": ("windows",),
    "keys": ("keys",),
    "gates": ("gates",),
}
_registered: set[str] = set()


def _modules_for(argv: list[str]) -> list[str]:
    """The modules `argv` needs: its command's, or every one for `--help`, no command or
    an unknown one (whose error lists them all)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "plan":
        return []
    needed = [module for module, commands in _MODULES.items() if command in commands]
    return needed or list(_MODULES)


def _register_commands(argv: list[str]) -> None:
    """Add the commands `argv` needs, each module once per process: `run` is also called
    many times in one process (tests, embedding callers), and adding a module's commands
    again would build a larger command tree each time."""
    import importlib

    for name in _modules_for(argv):
        if name in _registered:
            continue
        module = importlib.import_module(f"shiprail.cli.{name}")
        if hasattr(module, "register"):
            module.register(app)
        else:
            app.add_typer(module.app, name=name)
        _registered.add(name)


def main() -> None:
    """Console-script entry point: user errors become a message and an exit code."""
    _exit(run())


def run() -> int:
    """Run the command line; return its exit code (for callers that must not exit)."""
    _register_commands(sys.argv[1:])
    stop_on_sigterm()
    dump_stacks_on_sigusr1()
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
