"""Evaluation rules shared by every gate type: limits, no-data policy, the step decision.

Pure and JSON-able, so the bake activity can heartbeat the whole state and a new worker
picks up exactly where a killed one stopped.

Rules (failure modes seen in other tools are called out):
* a gate FAILS when failures exceed `failure_limit` (with `consecutive`, a run of failures
  does; one flaky failure between passes is forgiven);
* no data (empty result, NaN, below `min_samples`) follows `on_no_data`: counts as
  inconclusive (default), counts as a failure, or is waited out (counts as nothing);
* a Prometheus error is always inconclusive;
* inconclusive evaluations beyond `inconclusive_limit` FAIL the gate: missing data never
  promotes, and it never waits forever either;
* a step passes only when the bake is over and every gate's latest verdict is PASS;
  anything else keeps the step baking until it is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shiprail.gates.base import GateVerdict, Verdict
from shiprail.plan.models import Gate


class StepOutcome(StrEnum):
    CONTINUE = "continue"
    PASS = "pass"
    FAIL = "fail"


class GateTracker(BaseModel):
    name: str
    evaluations: int = 0
    passes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    inconclusives: int = 0
    waits: int = 0
    failed: bool = False
    failure_reason: str = ""
    last: GateVerdict | None = None
    memory: dict[str, Any] = Field(default_factory=dict)

    def record(self, verdict: GateVerdict, gate: Gate) -> None:
        self.evaluations += 1
        self.last = verdict
        status = verdict.status
        if verdict.no_data and gate.on_no_data == "fail":
            status = Verdict.FAIL
        elif verdict.no_data and gate.on_no_data == "wait" and "query failed" not in verdict.reason:
            self.waits += 1
            return
        if status is Verdict.PASS:
            self.passes += 1
            self.consecutive_failures = 0
        elif status is Verdict.FAIL:
            self.failures += 1
            self.consecutive_failures += 1
            counted = self.consecutive_failures if gate.consecutive else self.failures
            if counted > gate.failure_limit:
                self._fail(
                    f"{verdict.reason} ({counted} {'consecutive ' if gate.consecutive else ''}"
                    f"failure{'s' if counted != 1 else ''}, limit {gate.failure_limit})"
                )
        else:
            self.inconclusives += 1
            if self.inconclusives > gate.inconclusive_limit:
                self._fail(
                    f"{verdict.reason} ({self.inconclusives} inconclusive evaluations,"
                    f" limit {gate.inconclusive_limit}: failing closed)"
                )

    def _fail(self, reason: str) -> None:
        self.failed = True
        self.failure_reason = reason

    @property
    def passing(self) -> bool:
        return not self.failed and self.last is not None and self.last.status is Verdict.PASS

    def summary(self) -> str:
        counts = f"{self.evaluations} evaluations: {self.passes} pass, {self.failures} fail, {self.inconclusives} inconclusive"
        if self.waits:
            counts += f", {self.waits} waiting for data"
        return counts


def step_outcome(trackers: list[GateTracker], bake_over: bool) -> StepOutcome:
    if any(t.failed for t in trackers):
        return StepOutcome.FAIL
    if bake_over and all(t.passing for t in trackers):
        return StepOutcome.PASS
    return StepOutcome.CONTINUE
