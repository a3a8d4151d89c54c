"""Drift: an exposure that differs from what the rollout set, because someone changed the
flag or the weight behind its back (or a router reload put its configuration back).
Pure comparison, shared by the bake activity and the workflow."""

from __future__ import annotations

from pydantic import BaseModel

from shiprail.status import Exposure

# Actuators report weights rounded to their own resolution (HAProxy: 1/100, Unleash: whole
# percents); differences within this are not drift.
TOLERANCE = 0.5


class Drift(BaseModel):
    service: str
    expected_weight: float
    found: Exposure
    reason: str

    @property
    def summary(self) -> str:
        return f"expected {self.expected_weight:g}%, found {self.found.weight:g}%: {self.reason}"


def detect(service: str, expected_weight: float, found: Exposure) -> Drift | None:
    """The drift between what the rollout set and what the actuator reports, if any."""
    if abs(found.weight - expected_weight) <= TOLERANCE:
        return None
    state = found.state or {}
    reloaded = state.get("stable_initial") is not None and (
        state.get("stable"),
        state.get("canary"),
    ) == (state.get("stable_initial"), state.get("canary_initial"))
    reason = (
        "the router is back at its configured weights (a reload without a server-state file?)"
        if reloaded
        else "changed behind the rollout's back"
    )
    return Drift(service=service, expected_weight=expected_weight, found=found, reason=reason)
