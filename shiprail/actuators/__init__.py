"""Exposure controllers, one module each behind the `Actuator` interface."""

from __future__ import annotations

from shiprail.actuators.base import Actuator, ActuatorError, ExposureChange, PermanentActuatorError
from shiprail.actuators.flagd import FlagdActuator
from shiprail.actuators.haproxy import HaproxyActuator
from shiprail.actuators.http import HttpWebhookActuator
from shiprail.actuators.unleash import UnleashActuator
from shiprail.plan.actuators import Actuator as ActuatorConfig
from shiprail.plan.actuators import FlagdActuator as FlagdConfig
from shiprail.plan.actuators import HaproxyActuator as HaproxyConfig
from shiprail.plan.actuators import HttpActuator as HttpConfig
from shiprail.plan.actuators import UnleashActuator as UnleashConfig


def for_config(config: ActuatorConfig) -> Actuator:
    if isinstance(config, HttpConfig):
        return HttpWebhookActuator(config)
    if isinstance(config, HaproxyConfig):
        return HaproxyActuator(config)
    if isinstance(config, FlagdConfig):
        return FlagdActuator(config)
    if isinstance(config, UnleashConfig):
        return UnleashActuator(config)
    raise PermanentActuatorError(f"unknown actuator type {config.type!r}")


__all__ = ["Actuator", "ActuatorError", "ExposureChange", "PermanentActuatorError", "for_config"]
