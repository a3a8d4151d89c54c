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

    timeout: Duration = Field(timedelta(seconds=10), description="for one call to the actuator")


class HttpActuator(_Block):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(
        default_factory=dict, description="values may be env:NAME or file:PATH, resolved late"
    )


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

    @model_validator(mode="after")
    def _one_endpoint(self) -> HaproxyActuator:
        if (self.socket is None) == (self.address is None):
            raise ValueError("give the runtime API as socket (a path) or address (host:port), exactly one")
        if self.address is not None and not _HOST_PORT.match(self.address):
            raise ValueError(f"address {self.address!r} is not host:port")
        if self.stable == self.canary:
            raise ValueError("stable and canary must be two different servers")
        return self


class FlagdActuator(_Block):
    """One flag in a flagd flag-definition file (the file flagd, an OpenFeature provider in
    file mode, or the OpenFeature operator watches), rewritten atomically at each step."""

    type: Literal["flagd"]
    path: str = Field(min_length=1, description="the flag-definition JSON file")
    flag: str = Field(min_length=1, description="the flag key")
    on: bool | str | int | float = Field(True, description="the value of the variant being rolled out")
    off: bool | str | int | float = Field(False, description="the value everyone else gets")
    bucket_key: str | None = Field(
        None,
        description="shared by every flag-platform service of a rollout so a percentage picks the same users;"
        " default: the plan's name",
    )

    @model_validator(mode="after")
    def _distinct(self) -> FlagdActuator:
        if self.on == self.off:
            raise ValueError("on and off must be different values")
        return self


class UnleashActuator(_Block):
    """One feature flag in one Unleash environment, driven through the Admin API by a
    `flexibleRollout` strategy that shiprail adds (and removes again on restore)."""

    type: Literal["unleash"]
    url: str = Field(pattern=r"^https?://", description="the Unleash server, e.g. http://unleash:4242")
    token: str = Field(description="an admin API token: env:NAME or file:PATH")
    project: str = "default"
    environment: str = "production"
    feature: str = Field(min_length=1, description="the flag's name")
    stickiness: str = Field("userId", description="the context field users are bucketed by")
    bucket_key: str | None = Field(
        None, description="Unleash's groupId, shared by every flag of a rollout; default: the plan's name"
    )
    client_token: str | None = Field(
        None,
        description="a backend (client) API token, env:NAME or file:PATH: when given, a step's bake starts once"
        " Unleash serves the change to SDKs",
    )

    @model_validator(mode="after")
    def _token_is_a_reference(self) -> UnleashActuator:
        if not self.token.startswith(("env:", "file:")):
            raise ValueError(
                "token must be env:NAME or file:PATH: a literal token would be stored in workflow history"
            )
        return self


Actuator = Annotated[
    HttpActuator | HaproxyActuator | FlagdActuator | UnleashActuator, Field(discriminator="type")
]
ACTUATOR_TYPES = ("http", "haproxy", "flagd", "unleash")
# Actuators that bucket users by a key: the services of one rollout must share it. Their
# changes reach the services a moment later (SDKs poll, providers watch), so a step's bake
# waits until a change is served.
FLAG_PLATFORMS = ("flagd", "unleash")
