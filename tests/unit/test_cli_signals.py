"""SIGTERM stops a command exactly the way Ctrl-C does."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from shiprail.cli._signals import _as_ctrl_c, run, stop_on_sigterm


@pytest.fixture
def sigterm_as_ctrl_c() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    signal.signal(signal.SIGINT, signal.default_int_handler)  # what a command starts with
    stop_on_sigterm()
    yield
    signal.signal(signal.SIGTERM, before[0])
    signal.signal(signal.SIGINT, before[1])
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _sigterm() -> None:
    """`kill` this process, delivered to the main thread.

    A process-directed signal may be taken by any thread that does not block it (the test
    runner's own, a worker's); Python then runs the handler only when the main thread next
    wakes, which inside a sleeping event loop without a wakeup fd is after the sleep.
    """
    main = threading.main_thread().ident
    assert main is not None
    signal.pthread_kill(main, signal.SIGTERM)


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """How a script starts a background job: `shiprail worker &`."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def _unwinding_after_sigterm(runner: Callable[[Coroutine[Any, Any, None]], None]) -> list[str]:
    """Run a command that is sent SIGTERM; report whether it was cancelled and unwound."""
    unwound: list[str] = []

    async def command() -> None:
        try:
            _sigterm()
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            unwound.append("cancelled")
            raise

    with pytest.raises(KeyboardInterrupt):
        runner(command())
    return unwound


@pytest.mark.usefixtures("sigterm_as_ctrl_c")
def test_sigterm_inside_asyncio_cancels_the_main_task_like_ctrl_c() -> None:
    # An exception raised at an arbitrary point of the event loop can kill a worker's own
    # task and wedge its shutdown; cancelling the main task lets it unwind in order.
    assert _unwinding_after_sigterm(asyncio.run) == ["cancelled"]


@pytest.mark.usefixtures("sigterm_as_ctrl_c")
def test_sigterm_outside_asyncio_interrupts_like_ctrl_c() -> None:
    with pytest.raises(KeyboardInterrupt):
        _sigterm()
        time.sleep(5)  # interrupted at once by the handler
        raise AssertionError("SIGTERM did not interrupt")


@pytest.mark.usefixtures("sigterm_as_ctrl_c", "sigint_ignored")
def test_sigterm_stops_even_when_sigint_is_ignored() -> None:
    with pytest.raises(KeyboardInterrupt):
        _sigterm()
        time.sleep(5)
        raise AssertionError("SIGTERM did not interrupt")


@pytest.mark.usefixtures("sigterm_as_ctrl_c", "sigint_ignored")
def test_sigterm_cancels_a_commands_main_task_even_when_sigint_is_ignored() -> None:
    # asyncio cancels the main task on Ctrl-C only when SIGINT has its default handler;
    # without it a KeyboardInterrupt at an arbitrary point could wedge a worker's shutdown.
    assert _unwinding_after_sigterm(run) == ["cancelled"]
    assert signal.getsignal(signal.SIGTERM) is _as_ctrl_c  # the loop's handler is gone, ours is back


@pytest.mark.usefixtures("sigterm_as_ctrl_c")
def test_a_command_that_absorbs_the_cancellation_returns_its_result() -> None:
    async def command() -> str:
        try:
            _sigterm()
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "stopped cleanly"
        return "not stopped"

    assert run(command()) == "stopped cleanly"


@pytest.mark.usefixtures("sigterm_as_ctrl_c")
def test_a_parent_that_blocks_sigint_and_sigterm_cannot_make_a_command_unstoppable() -> None:
    # A blocked mask survives fork and exec; left blocked, only SIGKILL would stop `dev`,
    # orphaning the dev server it started.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    stop_on_sigterm()
    assert not {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with pytest.raises(KeyboardInterrupt):
        _sigterm()
        time.sleep(5)
        raise AssertionError("SIGTERM did not interrupt")
