"""`kill` stops a command the way Ctrl-C does, so `dev`, `demo` and `worker` take down
what they started instead of orphaning it or hanging."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


_STOPPING = {signal.SIGINT, signal.SIGTERM}


def stop_on_sigterm() -> None:
    """Outside an event loop, SIGTERM runs whatever handles SIGINT at that moment.

    A blocked signal mask survives fork and exec, and a parent that forks while it has
    SIGINT or SIGTERM blocked hands the command a mask in which neither arrives: only
    SIGKILL would stop it, orphaning what it started. So both are unblocked here.
    """
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)
        signal.signal(signal.SIGTERM, _as_ctrl_c)


def dump_stacks_on_sigusr1() -> None:
    """`kill -USR1` prints every thread's stack to stderr: where a stuck command is waiting."""
    # Embedded (tests, a caller's own process), stderr may not be a file: then no dump.
    with contextlib.suppress(AttributeError, ValueError, OSError, RuntimeError):
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt  # SIGINT is ignored (a background job of a script): stop anyway


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, with SIGTERM cancelling the main task as Ctrl-C does.

    A cancelled main task unwinds in order and the worker shuts down; a KeyboardInterrupt
    raised at an arbitrary point of the event loop can kill one of the worker's own tasks
    and leave its shutdown waiting forever. asyncio cancels the main task on Ctrl-C only
    when SIGINT has Python's default handler, and a script's background job has SIGINT
    ignored: there a SIGTERM would otherwise hang the command. A second SIGTERM stops at
    once, as a second Ctrl-C does.
    """
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(main)
    interrupted = False

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None

        def stop() -> None:
            nonlocal interrupted
            if interrupted:
                raise KeyboardInterrupt
            interrupted = True
            task.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
        return await main

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        stop_on_sigterm()  # closing the loop left SIGTERM at its default: back to ours
