"""Errors a user can act on, each with the exit code the CLI contract gives it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ROLLOUT_FAILED = 1
    BAD_INPUT = 2
    UNREACHABLE = 3


class ShiprailError(Exception):
    """An error with a message meant for the user, never a traceback."""

    exit_code = ExitCode.ROLLOUT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(ShiprailError):
    exit_code = ExitCode.BAD_INPUT


class Unreachable(ShiprailError):
    """A required service (Temporal, Prometheus, an actuator) cannot be reached."""

    exit_code = ExitCode.UNREACHABLE
