"""Sending one notification to one target. One activity per target, so a failing target
is retried alone; the workflow starts it and never waits on it to go on."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from shiprail.actuators import PermanentActuatorError
from shiprail.notifiers import Notification, NotifyError, for_target
from shiprail.plan.notify import NotifyTarget


class NotifyRequest(BaseModel):
    target: NotifyTarget
    notification: Notification


@activity.defn
async def notify(request: NotifyRequest) -> None:
    try:
        await for_target(request.target).send(request.notification)
    except PermanentActuatorError as exc:  # a reference the worker cannot resolve
        raise ApplicationError(str(exc), type="NotifyMisconfigured", non_retryable=True) from None
    except NotifyError as exc:
        # The message names the target, never its URL or headers: they may be secrets.
        raise ApplicationError(str(exc), type="NotifyFailed") from None
