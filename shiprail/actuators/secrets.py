"""`env:NAME` and `file:PATH` references, resolved only where they are used.

The plan (and therefore the workflow history) only ever holds the reference; the value
is read inside the activity and never returned from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from shiprail.actuators.base import PermanentActuatorError


def resolve(value: str, *, what: str) -> str:
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise PermanentActuatorError(f"{what}: environment variable {name} is not set on the worker")
        return os.environ[name]
    if value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise PermanentActuatorError(f"{what}: cannot read {path}: {exc.strerror}") from None
    return value


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of the resolved `secrets` in it: an actuator that echoes a token
    in an error body must not carry it into the failure, and so into workflow history."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text
