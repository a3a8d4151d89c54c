"""Failures and concurrency shared by the rollout's modules: how a step fails, and how
concurrent work inside the workflow is started, called off and waited for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

T = TypeVar("T")


class StepFailed(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class LockBusy(Exception):
    pass


class Blocked(Exception):
    pass


def cause_of(error: BaseException) -> str:
    while isinstance(error, ActivityError) and error.cause is not None:
        error = error.cause
    return str(error) or type(error).__name__


def stop_if_cancelled() -> None:
    """Honour a cancellation the awaited activity absorbed.

    An actuation waits for its activity to settle when cancelled (a change in flight must
    land before compensation), and an activity that completes anyway hands its result back
    as if nothing happened. Without this check a sibling of a failed service would go on
    to its next step while the rollout is already failing.
    """
    # Patched: histories recorded before this check replay as they ran.
    if called_off() and workflow.patched("honour-absorbed-cancellation"):
        raise asyncio.CancelledError()


def called_off() -> bool:
    """Whether the running task has been cancelled, even if what it awaited absorbed it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def all_or_cancel(work: Sequence[Awaitable[T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest, wait for them, re-raise it."""
    tasks = [asyncio.ensure_future(w) for w in work]
    if not tasks:
        return []
    try:
        await workflow.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await cancel_all(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        await cancel_all(tasks)
        error = failed.exception()
        assert error is not None
        raise error
    return [t.result() for t in tasks]
