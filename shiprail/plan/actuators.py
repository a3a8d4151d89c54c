"""Actuator blocks of a plan, one model per actuator type (DESIGN §3).

Each block says where the exposure lives and how to reach it; secrets are `env:NAME` or
`file:PATH` references, resolved by the worker inside the activity.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shiprail.plan.durations import Duration

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class HttpActuator(_Block):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(
        default_factory=dict, description="values may be env:NAME or file:PATH, resolved late"
    )
    timeout: Duration = timedelta(seconds=10)


class HaproxyActuator(_Block):
    """Stable and canary servers of one HAProxy backend, weighted through the runtime API
    (a `stats socket … level admin`, as a Unix socket path or a TCP host:port)."""

    type: Literal["haproxy"]
    socket: str | None = Field(None, description="path of the admin-level stats socket")
    address: str | None = Field(None, description="host:port of an admin-level stats listener")
    backend: str = Field(min_length=1)
    stable: str = Field(min_length=1, description="the stable server's name in the backend")
    canary: str = Field(min_length=1, description="the canary server's name in the backend")
    stable_version: str | None = Field(None, description="the version the stable server runs, for gates")
    timeout: Duration = timedelta(seconds=5)

    @model_validator(mode="after")
    def _one_endpoint(self) -> HaproxyActuator:
        if (self.socket is None) == (self.address is None):
            raise ValueError("give the runtime API as socket (a path) or address (host:port), exactly one")
        if self.address is not None and not _HOST_PORT.match(self.address):
            raise ValueError(f"address {self.address!r} is not host:port")
        if self.stable == self.canary:
            raise ValueError("stable and canary must be two different servers")
        return self


Actuator = Annotated[HttpActuator | HaproxyActuator, Field(discriminator="type")]
ACTUATOR_TYPES = ("http", "haproxy")
