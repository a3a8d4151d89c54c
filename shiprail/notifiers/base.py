"""The one notifier interface, and the event every notifier is handed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field


class Notification(BaseModel):
    """What happened: a phase change, a gate failure, a drift, a rollback, a departure."""

    event: str  # phase | gate_failed | drift | rollback | departure
    subject: str  # the rollout's or departure's id
    plan: str | None = None
    train: str | None = None
    phase: str | None = None
    service: str | None = None
    message: str
    time: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class NotifyError(Exception):
    """A notification that could not be delivered (retried by the activity's policy)."""


class Notifier(Protocol):
    async def send(self, notification: Notification) -> None: ...
