"""Pydantic models of the plan format (`apiVersion: shiprail/v1`, `kind: RolloutPlan`).

The models check everything that can be checked field by field, so pydantic reports all of
those problems in one pass; checks that need the whole plan (references, cycles, effective
per-service settings) live in `checks.py`.
"""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shiprail.plan.access import Roles
from shiprail.plan.actuators import FLAG_PLATFORMS, Actuator
from shiprail.plan.durations import Duration
from shiprail.plan.holidays import check_holidays
from shiprail.plan.notify import NotifyTarget
from shiprail.plan.templates import check_template

API_VERSION = "shiprail/v1"
MAX_SERVICES = 1000
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
Query = Annotated[str, StringConstraints(min_length=1), AfterValidator(check_template)]
Approval = Literal["none", "before_first_step", "before_full"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _check_steps(steps: list[float]) -> list[float]:
    if not steps:
        raise ValueError("steps cannot be empty; the last step must be 100")
    for weight in steps:
        if not 0 < weight <= 100:
            raise ValueError(f"step {weight:g} is outside (0, 100]")
    for before, after in itertools.pairwise(steps):
        if after <= before:
            raise ValueError(f"steps must be strictly increasing ({before:g} then {after:g})")
    if steps[-1] != 100:
        raise ValueError(f"the last step must be 100, not {steps[-1]:g}")
    return steps


Steps = Annotated[list[float], AfterValidator(_check_steps)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Metadata(_Model):
    name: Name
    owner: str | None = None
    ticket: str | None = None


class PrometheusRef(_Model):
    url: str = Field(pattern=r"^https?://", description="base URL of the Prometheus HTTP API")
    timeout: Duration = timedelta(seconds=10)


# ---- gates -------------------------------------------------------------------------------


class _GateBase(_Model):
    """Evaluation rules every gate type shares."""

    failure_limit: int = Field(0, ge=0, description="failed evaluations tolerated")
    consecutive: bool = Field(False, description="count consecutive failures instead of total")
    inconclusive_limit: int = Field(2, ge=0, description="no-data/NaN/error evaluations tolerated")
    min_samples: int = Field(0, ge=0, description="below this many requests a gate is inconclusive")
    initial_delay: Duration = timedelta(0)
    interval: Duration | None = None
    on_no_data: Literal["inconclusive", "fail", "wait"] = "inconclusive"


class ThresholdGate(_GateBase):
    type: Literal["threshold"]
    query: Query
    min: float | None = None
    max: float | None = None
    samples: Query | None = Field(None, description="query counting requests, for min_samples")

    @model_validator(mode="after")
    def _bounds(self) -> ThresholdGate:
        if self.min is None and self.max is None:
            raise ValueError("a threshold gate needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class BurnWindow(_Model):
    long: Duration
    short: Duration
    max_burn: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_within_long(self) -> BurnWindow:
        if self.short > self.long:
            raise ValueError("the short window must not be longer than the long one")
        return self


class BurnRateGate(_GateBase):
    type: Literal["burn_rate"]
    objective: float = Field(gt=0, lt=1)
    bad: Query
    total: Query
    windows: list[BurnWindow] = Field(min_length=1)


class LatencyGate(_GateBase):
    """Either `quantile` + `max`, or the SLI form `faster_than` + `objective`."""

    type: Literal["latency"]
    histogram: Query
    quantile: float | None = Field(None, gt=0, lt=1)
    max: float | None = Field(None, gt=0, description="seconds")
    faster_than: float | None = Field(None, gt=0, description="seconds; a bucket bound")
    objective: float | None = Field(None, gt=0, le=1)
    window: Duration = timedelta(minutes=1)

    @model_validator(mode="after")
    def _one_form(self) -> LatencyGate:
        quantile_form = self.quantile is not None or self.max is not None
        sli_form = self.faster_than is not None or self.objective is not None
        if quantile_form and sli_form:
            raise ValueError("use either quantile + max or faster_than + objective, not both")
        if sli_form and (self.faster_than is None or self.objective is None):
            raise ValueError("the SLI form needs both faster_than and objective")
        if not sli_form and (self.quantile is None or self.max is None):
            raise ValueError("a latency gate needs quantile + max (or faster_than + objective)")
        return self


class CompareGate(_GateBase):
    """Canary against baseline: counts (`bad` or `good`, with `total`), a histogram, or
    samples (`query`).

    `good` exists for histograms: requests faster than a bucket bound are a counter
    (`_bucket{le="0.25"}`), the slow ones are not, so the gate subtracts. `histogram`
    compares at every bucket bound at once, so no bound has to be picked in advance.
    """

    type: Literal["compare"]
    query: Query | None = None
    bad: Query | None = None
    good: Query | None = None
    total: Query | None = None
    histogram: Query | None = Field(None, description="selector of a histogram's _bucket series")
    baseline_version: Query = "{{stable_version}}"
    max_increase: float = Field(0.0, ge=0, description="tolerated relative degradation")
    confidence: float = Field(0.99, gt=0.5, lt=1)
    prior_strength: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> CompareGate:
        counts = self.bad is not None or self.good is not None or self.total is not None
        forms = [
            f
            for f, given in (("counts", counts), ("query", self.query), ("histogram", self.histogram))
            if given
        ]
        if len(forms) > 1:
            raise ValueError(
                "use one of bad/good + total (counts), histogram, or query (samples); got "
                + " and ".join(forms)
            )
        if self.bad is not None and self.good is not None:
            raise ValueError("give bad or good, not both")
        if counts and (self.total is None or (self.bad is None and self.good is None)):
            raise ValueError("the counts form needs total and one of bad or good")
        if not forms:
            raise ValueError("a compare gate needs bad + total (counts), histogram, or query (samples)")
        return self


Gate = Annotated[ThresholdGate | BurnRateGate | LatencyGate | CompareGate, Field(discriminator="type")]
GATE_TYPES = ("threshold", "burn_rate", "latency", "compare")


# ---- actuators ---------------------------------------------------------------------------


# Actuator blocks live in plan/actuators.py, one model each.


# ---- the rest of the spec ----------------------------------------------------------------


class Defaults(_Model):
    steps: Steps = Field(default_factory=lambda: [1.0, 5.0, 25.0, 50.0, 100.0])
    bake: Duration = timedelta(minutes=5)
    interval: Duration = timedelta(seconds=30)
    gates: list[str] = Field(default_factory=list)
    approval: Approval = "none"
    propagation: Duration = Field(
        timedelta(seconds=30),
        description="longest a flag change may take to reach the services; the bake starts once it is served"
        " (when the actuator can tell) or after this",
    )


class BudgetPolicy(_Model):
    objective: float = Field(gt=0, lt=1)
    period: Duration = timedelta(days=28)
    min_remaining: float = Field(0.0, ge=0, le=1)
    bad: Query
    total: Query


def _parse_clock(value: Any) -> Any:
    # YAML 1.1 reads an unquoted 09:00 as the integer 540 (sexagesimal); undo that.
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value // 60:02d}:{value % 60:02d}"
    return value


Clock = Annotated[time, Field(json_schema_extra={"examples": ["09:00"]})]


class AllowWindow(_Model):
    """A weekly allow window in the windows' time zone; `end` at or before `start` means
    it closes the next day (an overnight window belongs to the day it opens)."""

    days: list[Weekday] = Field(min_length=1)
    start: Clock
    end: Clock

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> Any:
        return _parse_clock(value)

    @model_validator(mode="after")
    def _not_empty(self) -> AllowWindow:
        if self.end == self.start:
            raise ValueError(f"start and end are both {self.start:%H:%M}: the window would be empty")
        return self


def _parse_moment(value: Any) -> date | datetime:
    """A deny bound is a whole day (`2026-12-24`) or a wall-clock time in the windows' zone
    (`2026-12-31T22:00`); YAML gives a date, a naive datetime or a string."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError("write deny times without an offset: they are read in the windows' timezone")
        return value
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a date (2026-12-24) or a time (2026-12-31T22:00)")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is neither a date (2026-12-24) nor a time (2026-12-31T22:00)") from None
    if len(text) <= 10:
        return moment.date()
    return _parse_moment(moment)


Moment = Annotated[
    date | datetime,
    PlainValidator(_parse_moment),
    WithJsonSchema({"type": "string", "examples": ["2026-12-24", "2026-12-31T22:00"]}),
]


class DenyWindow(_Model):
    """A freeze. Dates are whole days (both ends included); times are wall-clock times in
    the windows' zone (`to` excluded), so a freeze can start at 22:00 and run over midnight."""

    from_: Moment = Field(alias="from")
    to: Moment
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DenyWindow:
        start, end = wall_clock(self.from_, end=False), wall_clock(self.to, end=True)
        if end <= start:
            raise ValueError(f"to {self.to} is not after from {self.from_}")
        return self


def wall_clock(moment: date, *, end: bool) -> datetime:
    """A deny bound as a naive wall-clock time: a date ends at the next midnight."""
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment + timedelta(days=1) if end else moment, time())


class HolidayCalendar(_Model):
    """Public holidays from the `holidays` package, each a whole-day freeze named after
    the holiday."""

    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. DE")
    subdiv: str | None = Field(None, description="subdivision code, e.g. BE for Berlin")
    categories: list[str] = Field(default_factory=lambda: ["public"], min_length=1)
    language: str | None = Field(None, description="language of the holiday names, e.g. en_US")

    @model_validator(mode="after")
    def _known(self) -> HolidayCalendar:
        check_holidays(self.country, self.subdiv, tuple(self.categories), self.language)
        return self


class DeployWindows(_Model):
    timezone: str = "UTC"
    allow: list[AllowWindow] = Field(default_factory=list)
    deny: list[DenyWindow] = Field(default_factory=list)
    holidays: list[HolidayCalendar] = Field(default_factory=list)

    @field_validator("holidays", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)


def with_bucket_keys(raw: Any) -> Any:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("metadata"), dict)
        or not isinstance(raw.get("spec"), dict)
    ):
        return raw
    services = raw["spec"].get("services")
    if not isinstance(services, list):
        return raw
    default = raw["metadata"].get("name")
    filled = []
    for service in services:
        actuator = service.get("actuator") if isinstance(service, dict) else None
        if (
            isinstance(actuator, dict)
            and actuator.get("type") in FLAG_PLATFORMS
            and actuator.get("bucket_key") is None
        ):
            service = {**service, "actuator": {**actuator, "bucket_key": default}}
        filled.append(service)
    return {**raw, "spec": {**raw["spec"], "services": filled}}


def check_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from None
    return value


class RollbackPolicy(_Model):
    scope: Literal["all", "dependents"] = "all"
    timeout: Duration = Field(
        timedelta(minutes=10), description="how long compensation keeps retrying a service"
    )


class Service(_Model):
    name: Name
    version: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list)
    actuator: Actuator
    steps: Steps | None = None
    bake: Duration | None = None
    interval: Duration | None = None
    gates: list[str] | None = None
    approval: Approval | None = None
    propagation: Duration | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"version must be a string: quote it ('{value}'), YAML reads it as a number")
        return value


class Spec(_Model, Roles):  # approvers, operators, access
    prometheus: PrometheusRef | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    gates: dict[str, Gate] = Field(default_factory=dict)
    budget_policy: BudgetPolicy | None = None
    windows: DeployWindows | None = None
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    lockstep: bool = False
    max_parallel: int = Field(0, ge=0)
    notify: list[NotifyTarget] = Field(default_factory=list, description="where phase changes, failures go")
    # One rollout's history holds about eight events a service-step: past a thousand
    # services it would outgrow Temporal's 51,200-event limit within a few steps.
    services: list[Service] = Field(min_length=1, max_length=MAX_SERVICES)


class RolloutPlan(_Model):
    api_version: Literal["shiprail/v1"] = Field(alias="apiVersion")
    kind: Literal["RolloutPlan"]
    metadata: Metadata
    spec: Spec

    @model_validator(mode="before")
    @classmethod
    def _shared_bucket_key(cls, raw: Any) -> Any:
        """Flag-platform services bucket by the plan's name unless told otherwise, so every
        service of the rollout (and a later rollout of the same plan) picks the same users."""
        return with_bucket_keys(raw)

    def service(self, name: str) -> Service:
        for service in self.spec.services:
            if service.name == name:
                return service
        raise KeyError(name)
