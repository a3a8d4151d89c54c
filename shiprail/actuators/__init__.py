"""Exposure controllers, one module each behind the `Actuator` interface."""

from __future__ import annotations

from shiprail.actuators.base import Actuator, ActuatorError, ExposureChange, PermanentActuatorError
from shiprail.actuators.http import HttpWebhookActuator
from shiprail.plan.models import Actuator as ActuatorConfig


def for_config(config: ActuatorConfig) -> Actuator:
    if config.type == "http":
        return HttpWebhookActuator(config)
    raise PermanentActuatorError(f"unknown actuator type {config.type!r}")


__all__ = ["Actuator", "ActuatorError", "ExposureChange", "PermanentActuatorError", "for_config"]
