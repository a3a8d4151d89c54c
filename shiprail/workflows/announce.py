"""Starting notifications from workflow code: one activity per target, started and never
awaited on the way, so a slow or failing target holds nothing up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from shiprail.activities import notify as notify_activity
    from shiprail.notifiers import Notification
    from shiprail.plan.notify import NotifyTarget

_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=20))


def announce(targets: Sequence[NotifyTarget], notification: Notification) -> list[asyncio.Future[Any]]:
    """Start sending `notification` to every target that wants its event."""
    return [
        workflow.start_activity(
            notify_activity.notify,
            notify_activity.NotifyRequest(target=target, notification=notification),
            start_to_close_timeout=target.timeout + timedelta(seconds=5),
            schedule_to_close_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
            summary=f"notify {target.name or target.type}: {notification.event}"[:200],
        )
        for target in targets
        if notification.event in target.events
    ]


async def delivered(sent: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for notifications still being sent, each until its own deadline; a failure is
    its own, never the workflow's."""
    if sent:
        await asyncio.wait(list(sent))
