"""What a rollout looks like from outside: phase, per-service progress, audit entries.

Plain models (no Temporal), shared by the workflow (which keeps them), the CLI (which
shows them) and the web UI details (markdown rendered here).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Phase(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING_WINDOW = "waiting_window"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.ROLLBACK_FAILED, Phase.FAILED}


class ServiceState(StrEnum):
    WAITING = "waiting"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING_WINDOW = "waiting_window"
    ACTUATING = "actuating"
    PROPAGATING = "propagating"
    BAKING = "baking"
    HOLDING = "holding"
    DONE = "done"
    DRIFTED = "drifted"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    RESTORED = "restored"
    RESTORE_FAILED = "restore_failed"
    UNTOUCHED = "untouched"


class Exposure(BaseModel):
    """What an actuator reports: which versions serve and the canary's weight, and for
    actuators whose state is richer than a weight (server weights, flag strategies), that
    state as read, so a restore puts back exactly what was there."""

    service: str
    stable_version: str | None = None
    canary_version: str | None = None
    weight: float = 0.0
    state: dict[str, Any] | None = None


class GateStatus(BaseModel):
    name: str
    status: str
    value: float | None = None
    threshold: str = ""
    reason: str = ""
    # A sequential gate that has not rejected yet: passing, but not evidence of health.
    pending: bool = False
    # The gate reached its failure limit and stopped the step. A gate whose last look
    # failed below its limit shows status "fail" too, but did not decide anything.
    failed: bool = False
    p_value: float | None = None
    requests: float | None = None

    @property
    def shown(self) -> str:
        """The status a reader sees: "pending" rather than "pass" while a gate still weighs."""
        return "pending" if self.pending and self.status == "pass" else self.status


class ServiceStatus(BaseModel):
    name: str
    version: str
    wave: int
    steps: list[float]
    step: int = 0  # 1-based index of the current step; 0 before the first
    weight: float = 0.0
    state: ServiceState = ServiceState.WAITING
    gates: list[GateStatus] = Field(default_factory=list)
    note: str = ""
    original: Exposure | None = None


class AuditEntry(BaseModel):
    time: datetime
    kind: str  # phase | actuation | restore | gate | human | lock | info
    message: str
    service: str | None = None
    actor: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class RolloutStatus(BaseModel):
    id: str
    plan: str
    phase: Phase
    reason: str = ""
    owner: str | None = None
    ticket: str | None = None
    started_by: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    lock_holder: str | None = None
    paused_by: str | None = None
    unrestored: list[str] = Field(default_factory=list)
    services: list[ServiceStatus] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """The `status --json` shape of the CLI contract (plus a few extra fields)."""
        return {
            "id": self.id,
            "plan": self.plan,
            "phase": self.phase.value,
            "reason": self.reason,
            "lock_holder": self.lock_holder,
            "unrestored": self.unrestored,
            "services": [
                {
                    "name": s.name,
                    "version": s.version,
                    "wave": s.wave,
                    "step": s.step,
                    "steps": len(s.steps),
                    "weight": s.weight,
                    "state": s.state.value,
                    "note": s.note,
                    "gates": [g.model_dump() for g in s.gates],
                }
                for s in self.services
            ],
        }


_MAX_DETAILS = 19_000  # the UI limit is 20 KB


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "‹").replace(">", "›").replace("\n", " ")


def render_details(status: RolloutStatus) -> str:
    """Markdown for the Temporal web UI's "current details"."""
    lines = [f"**{status.phase.value}**" + (f" — {_md(status.reason)}" if status.reason else "")]
    if status.lock_holder:
        lines.append(f"\nwaiting for service lock held by `{status.lock_holder}`")
    lines += [
        "",
        "| wave | service | version | step | weight | state | gates |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in status.services:
        gates = "; ".join(
            f"{g.name}: {g.shown}" + (f" ({_md(g.reason)})" if g.reason else "") for g in s.gates
        )
        step = f"{s.step}/{len(s.steps)}" if s.step else f"–/{len(s.steps)}"
        lines.append(
            f"| {s.wave} | {s.name} | {s.version} | {step} | {s.weight:g}% | {s.state.value}"
            f"{' ' + _md(s.note) if s.note else ''} | {gates or '–'} |"
        )
    if status.unrestored:
        lines.append(f"\n**not restored:** {', '.join(status.unrestored)}")
    text = "\n".join(lines)
    return text if len(text) <= _MAX_DETAILS else text[: _MAX_DETAILS - 20] + "\n… (truncated)"
