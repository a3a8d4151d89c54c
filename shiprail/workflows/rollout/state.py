"""What a rollout knows and shows: its plan, its services' progress, the audit log, and
the bookkeeping that keeps the status, the search attributes and the web UI's details in
step. The rollout's other parts (steps, saga, human control) build on this."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import shiprail.visibility as visibility
    from shiprail.drift import Drift
    from shiprail.notifiers import Notification
    from shiprail.plan.resolve import plan_waves, resolve_services
    from shiprail.status import AuditEntry, Phase, RolloutStatus, ServiceState, ServiceStatus, render_details
    from shiprail.workflows.announce import announce, delivered
    from shiprail.workflows.inputs import ControlRequest, RolloutInput


class RolloutState:
    def __init__(self, request: RolloutInput) -> None:
        self._plan = request.plan
        self._id = request.rollout_id
        self._settings = {s.name: s for s in resolve_services(request.plan)}
        self._waves = plan_waves(request.plan)
        self._status = RolloutStatus(
            id=request.rollout_id,
            plan=request.plan.metadata.name,
            phase=Phase.PENDING,
            owner=request.plan.metadata.owner,
            ticket=request.plan.metadata.ticket,
            started_by=request.started_by,
            services=[
                ServiceStatus(name=s.name, version=s.version, wave=s.wave + 1, steps=s.steps)
                for s in self._settings.values()
            ],
        )
        self._svc = {s.name: s for s in self._status.services}
        self._audit: list[AuditEntry] = []
        self._touched: set[str] = set()
        self._actuating: set[str] = set()
        self._rollback: asyncio.Task[None] | None = None
        self._locks: list[workflow.ChildWorkflowHandle[Any, Any]] = []
        self._paused = False
        self._abort: ControlRequest | None = None
        self._approved: set[tuple[str, int]] = set()
        self._awaiting: set[tuple[str, int]] = set()
        self._work: asyncio.Task[None] | None = None
        self._last_phase: Phase | None = None
        self._locked = False
        self._windows = [w for w in (request.plan.spec.windows, request.train_windows) if w is not None]
        self._budget_policies = [
            p for p in (request.plan.spec.budget_policy, request.train_budget_policy) if p is not None
        ]
        self._override = request.window_override
        self._train = request.train
        self._drifts: dict[str, Drift] = {}
        # By service, what its gates learned of its noise in its last passing bake.
        self._learned: dict[str, dict[str, dict[str, Any]]] = {}
        self._notifications: list[asyncio.Future[Any]] = []
        self._nonces: set[str] = set()  # of signed control requests accepted
        self._refusals = 0

    def _prom_url(self) -> str | None:
        return self._plan.spec.prometheus.url if self._plan.spec.prometheus else None

    def _log(
        self,
        kind: str,
        message: str,
        *,
        service: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self._audit.append(
            AuditEntry(
                time=workflow.now(), kind=kind, message=message, service=service, actor=actor, data=data or {}
            )
        )

    def _set_state(
        self, service: str, state: ServiceState, *, note: str | None = None, refresh: bool = True
    ) -> None:
        self._svc[service].state = state
        if note is not None:
            self._svc[service].note = note
        if refresh:
            self._refresh()

    def _set_phase(self, phase: Phase) -> None:
        self._status.phase = phase
        self._refresh()

    def _finish(self, phase: Phase, reason: str) -> None:
        self._status.reason = reason
        self._status.ended_at = workflow.now()
        for s in self._status.services:
            if s.name not in self._touched and s.state is ServiceState.WAITING:
                s.state = ServiceState.UNTOUCHED
        self._set_phase(phase)
        self._log("phase", f"{phase.value}: {reason}")
        workflow.upsert_memo({"final": self._status.model_dump(mode="json")})

    def _live_phase(self) -> Phase:
        if self._status.phase.terminal or self._status.phase is Phase.ROLLING_BACK:
            return self._status.phase
        if not self._locked:
            return Phase.PENDING
        states = {s.state for s in self._status.services}
        if self._paused:
            return Phase.PAUSED
        if ServiceState.AWAITING_APPROVAL in states:
            return Phase.AWAITING_APPROVAL
        if ServiceState.WAITING_WINDOW in states:
            return Phase.WAITING_WINDOW
        return Phase.RUNNING

    def _notify(self, event: str, message: str, *, service: str | None = None, **data: Any) -> None:
        """Announce to the plan's targets; `run` gives the last ones a moment before it returns."""
        notification = Notification(
            event=event,
            subject=self._id,
            plan=self._plan.metadata.name,
            train=self._train,
            phase=self._status.phase.value,
            service=service,
            message=message,
            time=workflow.now(),
            data=data,
        )
        self._notifications += announce(self._plan.spec.notify, notification)

    async def _notifications_sent(self) -> None:
        await delivered(self._notifications)

    def _refresh(self) -> None:
        self._status.phase = self._live_phase()
        if self._status.phase != self._last_phase:
            if self._last_phase is not None:
                self._log("phase", f"phase {self._status.phase.value}")
            self._last_phase = self._status.phase
            self._notify("phase", self._status.reason or f"phase {self._status.phase.value}")
            workflow.upsert_search_attributes([visibility.PHASE.value_set(self._status.phase.value)])
        workflow.set_current_details(render_details(self._status))
