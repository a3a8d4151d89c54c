"""The one gate interface: queries to run, then a pure judgement over their results.

A gate type is a module with two functions:

* `queries(gate, ctx) -> dict[str, QuerySpec]` names the PromQL it needs now;
* `judge(gate, ctx, results, memory) -> GateVerdict` decides from what came back.

Neither does I/O; the Prometheus source runs the queries in between. `memory` is a small
JSON-able dict a gate may keep from one evaluation to the next in the same step (the
sequential test keeps the largest e-value it has seen there); it survives worker restarts
because the bake activity heartbeats it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class GateVerdict(BaseModel):
    """One evaluation of one gate: what was measured, against what, and why."""

    gate: str
    status: Verdict
    value: float | None = None
    threshold: str = ""
    reason: str = ""
    evidence: dict[str, float | int | str | None] = {}
    no_data: bool = False
    # A sequential gate that has not rejected has not accepted either: it passes so the
    # step can end when the bake does, but says it is still weighing evidence.
    pending: bool = False


@dataclass(frozen=True)
class QuerySpec:
    """An instant query, or a range query when `range_step` is set (samples over time).

    With `by`, the instant query may return one series per value of that label (`le` of a
    histogram's buckets) and the result maps each value to its number.
    """

    promql: str
    range_start: datetime | None = None
    range_step: timedelta | None = None
    by: str | None = None


@dataclass(frozen=True)
class QueryResult:
    """What came back: one number, a series of numbers, numbers by label, or an error
    (never raised)."""

    value: float | None = None
    series: list[float] = field(default_factory=list)
    error: str | None = None
    by_label: dict[str, float] = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        """Errors, empty results and NaN all mean "we do not know"."""
        return self.error is not None or self.value is None or not math.isfinite(self.value)


@dataclass(frozen=True)
class GateContext:
    """Where and when a gate is evaluated."""

    service: str
    version: str
    stable_version: str
    weight: float
    step_start: datetime
    now: datetime
    bake: timedelta
    interval: timedelta

    @property
    def elapsed(self) -> timedelta:
        return max(self.now - self.step_start, timedelta(0))

    def template_values(self) -> dict[str, str]:
        from shiprail.plan.durations import format_duration

        return {
            "service": self.service,
            "version": self.version,
            "stable_version": self.stable_version,
            "weight": f"{self.weight:g}",
            "step_start": str(int(self.step_start.timestamp())),
            "bake": format_duration(self.bake),
            "interval": format_duration(self.interval),
        }


def prom_range(window: timedelta, *, floor: timedelta = timedelta(seconds=2)) -> str:
    """A PromQL range selector duration in whole seconds, at least `floor`."""
    seconds = max(int(window.total_seconds()), int(floor.total_seconds()))
    return f"{seconds}s"


def no_data(gate: str, reason: str, threshold: str = "", **evidence: Any) -> GateVerdict:
    return GateVerdict(
        gate=gate,
        status=Verdict.INCONCLUSIVE,
        threshold=threshold,
        reason=reason,
        evidence=evidence,
        no_data=True,
    )


def fmt_ratio(value: float) -> str:
    return f"{value * 100:.3g}%"


def too_few(count: float, what: str, needed: int) -> str:
    """Why a gate is short of data. `increase()` extrapolates, so counts are fractional:
    rounding 19.6 up would print "only 20 requests, 20 needed", so this rounds down."""
    shown = f"{math.floor(count * 10) / 10:g}" if count < 100 else f"{math.floor(count)}"
    return f"only {shown} {what}, {needed} needed"
