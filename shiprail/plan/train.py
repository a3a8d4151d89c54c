"""Pydantic models of release trains (`apiVersion: shiprail/v1`, `kind: ReleaseTrain`).

A train is a cadence on a Temporal Schedule plus the rules its departures follow; the
cars (boarded plans) are not in the file, they are boarded later with `train board`.
"""

from __future__ import annotations

import zoneinfo
from datetime import timedelta
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from shiprail.plan.access import Roles
from shiprail.plan.durations import Duration
from shiprail.plan.models import BudgetPolicy, DeployWindows, Metadata, _Model, check_zone
from shiprail.plan.notify import NotifyTarget

_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# Temporal's own minimum: a departure missed by more than this is dropped, never run late.
MIN_CATCHUP = timedelta(seconds=10)


def _check_cron(expression: str) -> str:
    """Temporal's cron dialect: 5 fields (minute hour day month weekday), or 7 with seconds
    first and year last, or a macro such as @daily."""
    text = expression.strip()
    if text in _MACROS:
        return text
    fields = text.split()
    if len(fields) == 5:
        valid = croniter.is_valid(text)
    elif len(fields) == 7:
        valid = croniter.is_valid(" ".join(fields), second_at_beginning=True)
    else:
        raise ValueError(
            f"cron {expression!r} has {len(fields)} fields: use 5 (minute hour day month weekday),"
            " 7 (second minute hour day month weekday year) or a macro such as @daily"
        )
    if not valid:
        raise ValueError(f"cron {expression!r} is not a valid cron expression")
    return text


Cron = Annotated[str, AfterValidator(_check_cron)]


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class TrainSchedule(_Model):
    timezone: str = Field("UTC", description="IANA time zone the cron expressions are read in")
    cron: Annotated[list[Cron], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    every: Duration | None = Field(None, description="an interval, e.g. 1w; seconds-scale cadences work")
    jitter: Duration = timedelta(0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError("every must be at least 1s")
        return value

    @model_validator(mode="after")
    def _some_cadence(self) -> TrainSchedule:
        if not self.cron and self.every is None:
            raise ValueError("a schedule needs cron, every, or both")
        return self


class TrainSpec(_Model, Roles):  # operators (and approvers, unused), access
    schedule: TrainSchedule
    cutoff: Duration = Field(timedelta(0), description="boarding for a departure closes this long before it")
    overlap: Literal["skip", "buffer_one"] = "skip"
    catchup_window: Duration = Field(
        timedelta(minutes=1), description="a departure missed by more than this (an outage) is not run late"
    )
    on_failure: Literal["stop", "continue"] = "stop"
    parallel: bool = Field(False, description="cars with no dependency between them depart together")
    windows: DeployWindows | None = None
    budget_policy: BudgetPolicy | None = None
    notify: list[NotifyTarget] = Field(default_factory=list, description="departures are announced here")

    @field_validator("catchup_window")
    @classmethod
    def _catchup(cls, value: timedelta) -> timedelta:
        if value < MIN_CATCHUP:
            raise ValueError("catchup_window must be at least 10s (Temporal's minimum)")
        return value

    @model_validator(mode="after")
    def _cutoff_within_cadence(self) -> TrainSpec:
        every = self.schedule.every
        if every is not None and not self.schedule.cron and self.cutoff >= every:
            raise ValueError(
                "cutoff must be shorter than the interval between departures, or no plan could ever board"
            )
        return self


class ReleaseTrain(_Model):
    api_version: Literal["shiprail/v1"] = Field(alias="apiVersion")
    kind: Literal["ReleaseTrain"]
    metadata: Metadata
    spec: TrainSpec

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.spec.schedule.timezone)
