"""Notification targets of a plan or train (`spec.notify`), one model per type.

A webhook's URL and headers, and a Slack webhook's URL (which is itself the secret), may be
`env:NAME` / `file:PATH` references resolved by the worker; a literal Slack webhook URL is
refused, since it would be stored in workflow history.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shiprail.plan.durations import Duration

Event = Literal["phase", "gate_failed", "drift", "rollback", "departure"]
EVENTS: tuple[Event, ...] = ("phase", "gate_failed", "drift", "rollback", "departure")


def _url_or_reference(value: str) -> str:
    if value.startswith(("env:", "file:", "http://", "https://")):
        return value
    raise ValueError("expected an http(s) URL, env:NAME or file:PATH")


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="how the target is named in errors and the audit log")
    events: list[Event] = Field(
        default_factory=lambda: list(EVENTS), description="which events to send (default: all)"
    )
    timeout: Duration = timedelta(seconds=10)


class WebhookTarget(_Target):
    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict, description="values may be env:NAME or file:PATH")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _url_or_reference(value)


class SlackTarget(_Target):
    type: Literal["slack"]
    url: str = Field(description="the incoming-webhook URL: env:NAME or file:PATH for a real Slack hook")
    channel: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "hooks.slack.com" in value:
            raise ValueError("a Slack webhook URL is a secret: give it as env:NAME or file:PATH")
        return _url_or_reference(value)


NotifyTarget = Annotated[WebhookTarget | SlackTarget, Field(discriminator="type")]
