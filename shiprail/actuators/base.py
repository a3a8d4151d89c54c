"""The one actuator interface: read a service's exposure, set a new one.

Errors are split the way retries need them: a permanent error (bad request, unknown
service, missing credential) is never retried; a transient one (5xx, connection) is,
by the activity's retry policy.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from shiprail.status import Exposure


class ExposureChange(BaseModel):
    service: str
    version: str
    weight: float
    rollout_id: str
    idempotency_key: str


class ActuatorError(Exception):
    """A transient failure: retrying may help."""


class PermanentActuatorError(ActuatorError):
    """Retrying cannot help (4xx, bad configuration)."""


class Actuator(Protocol):
    """Read a service's exposure, set a new one, and put back exactly what was read.

    `restore` receives the `Exposure` that `read` returned before the rollout's first
    change (with its `state`), and the change that stands for it in the audit log."""

    async def read(self, service: str) -> Exposure: ...

    async def apply(self, change: ExposureChange) -> None: ...

    async def restore(self, change: ExposureChange, original: Exposure) -> None: ...

    async def served(self, change: ExposureChange) -> bool | None:
        """Whether the services are served `change` yet; None when the actuator cannot tell."""
        ...
