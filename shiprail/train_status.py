"""What a release train looks like from outside: boarded cars, departures and their cars'
outcomes. Plain models (no Temporal), shared by the train workflows, the CLI and the web
UI's details.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shiprail.plan.cars import Car
from shiprail.plan.train import ReleaseTrain
from shiprail.status import AuditEntry

# Car phases beyond a rollout's own.
WAITING = "waiting"
SKIPPED = "skipped"
NOT_STARTED = "not_started"
# Departure outcomes (DESIGN §4).
RUNNING, SUCCEEDED, FAILED, EMPTY = "running", "succeeded", "failed", "empty"


class CarRecord(BaseModel):
    car: str
    rollout_id: str | None = None
    phase: str = WAITING
    note: str = ""

    @property
    def outcome(self) -> str:
        """`succeeded`, `rolled_back`, `skipped: depends on X`, `not started: train stopped`."""
        label = "not started" if self.phase == NOT_STARTED else self.phase
        return f"{label}: {self.note}" if self.note and self.phase in (SKIPPED, NOT_STARTED) else label


class DepartureRecord(BaseModel):
    id: str
    scheduled: datetime
    outcome: str = RUNNING
    reason: str = ""
    cars: list[CarRecord] = Field(default_factory=list)
    ended_at: datetime | None = None


class SkipRecord(BaseModel):
    departs: datetime
    reason: str
    actor: str


class TrainState(BaseModel):
    """Everything the long-lived train workflow keeps; its input when it continues as new."""

    train: ReleaseTrain
    cars: list[Car] = Field(default_factory=list)
    departures: list[DepartureRecord] = Field(default_factory=list)
    skips: list[SkipRecord] = Field(default_factory=list)
    audit: list[AuditEntry] = Field(default_factory=list)
    trigger_upto: datetime | None = None
    closed: bool = False
    # Signed control (`spec.access`): nonces accepted within the freshness window, so a
    # captured request cannot be sent twice; and how many requests were refused.
    nonces: dict[str, datetime] = Field(default_factory=dict)
    refusals: int = 0


def render_departure(train: str, scheduled: datetime, zone: str, record: DepartureRecord) -> str:
    """The departure's current details in the web UI: a markdown table of its cars."""
    lines = [
        f"**train {train}**, departure {scheduled:%Y-%m-%d %H:%M:%S} UTC ({zone}): **{record.outcome}**",
        "",
        "| car | rollout | outcome |",
        "|---|---|---|",
    ]
    lines += [f"| {c.car} | {c.rollout_id or '–'} | {c.outcome} |" for c in record.cars]
    if not record.cars:
        lines.append("| – | – | no cars boarded |")
    if record.reason:
        lines += ["", record.reason]
    return "\n".join(lines)
