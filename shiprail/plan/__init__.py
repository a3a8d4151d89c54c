"""Plans: the models, loading with precise errors, dependency waves and schedules."""

from shiprail.plan.actuators import HaproxyActuator, HttpActuator
from shiprail.plan.durations import Duration, format_duration, parse_duration
from shiprail.plan.loader import PlanError, PlanIssue, load_plan, parse_plan
from shiprail.plan.models import (
    BurnRateGate,
    CompareGate,
    Gate,
    LatencyGate,
    RolloutPlan,
    Service,
    ThresholdGate,
)
from shiprail.plan.resolve import (
    Schedule,
    ServiceSettings,
    build_schedule,
    plan_waves,
    resolve_services,
)

__all__ = [
    "BurnRateGate",
    "CompareGate",
    "Duration",
    "Gate",
    "HaproxyActuator",
    "HttpActuator",
    "LatencyGate",
    "PlanError",
    "PlanIssue",
    "RolloutPlan",
    "Schedule",
    "Service",
    "ServiceSettings",
    "ThresholdGate",
    "build_schedule",
    "format_duration",
    "load_plan",
    "parse_duration",
    "parse_plan",
    "plan_waves",
    "resolve_services",
]
