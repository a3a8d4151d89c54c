"""Human control: pause, resume, approve, abort and override as Temporal updates whose
validators refuse what the rollout's state does not allow, and the status and audit
queries."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from shiprail.authz import refusal
    from shiprail.status import AuditEntry, Phase, RolloutStatus, ServiceState
    from shiprail.workflows.inputs import ControlRequest, Refusal
    from shiprail.workflows.rollout.state import RolloutState

# Refusals are reported by whoever was refused; past this many only the count grows, so
# nobody can flood the audit log (or the history) with them.
MAX_REFUSALS = 50


class HumanControl(RolloutState):
    def _authorize(self, action: str, request: ControlRequest) -> None:
        """Refuse what the plan's `access` does not allow. Deterministic: the keys are in the
        plan, the time is the workflow's, the nonces seen are in its state."""
        access = self._plan.spec.access_rules()
        if access is None:
            return
        why = refusal(access, self._id, action, request, workflow.now(), self._nonces)
        if why is not None:
            raise ApplicationError(f"not authorized: {why}", type="NotAuthorized")

    def _accepted(self, request: ControlRequest) -> None:
        if request.nonce:
            self._nonces.add(request.nonce)

    @workflow.signal
    def refused(self, report: Refusal) -> None:
        self._refusals += 1
        if self._refusals <= MAX_REFUSALS:
            self._log(
                "refusal", f"refused {report.action} by {report.actor}: {report.reason}", actor=report.actor
            )
        elif self._refusals == MAX_REFUSALS + 1:
            self._log("refusal", f"more than {MAX_REFUSALS} refusals; further ones are counted, not listed")

    def _refuse_unless_active(self, verb: str) -> None:
        if self._status.phase.terminal:
            raise ApplicationError(f"rollout is {self._status.phase.value}; cannot {verb}")
        if self._status.phase is Phase.ROLLING_BACK or self._abort is not None:
            raise ApplicationError(f"rollout is rolling back; cannot {verb}")

    @workflow.update
    def pause(self, request: ControlRequest) -> str:
        self._accepted(request)
        self._paused = True
        self._log("human", f"paused: {request.reason}", actor=request.actor)
        self._status.paused_by = request.actor
        self._refresh()
        return "paused: weights hold after the current bake; gates keep being evaluated"

    @pause.validator
    def _validate_pause(self, request: ControlRequest) -> None:
        self._authorize("pause", request)
        self._refuse_unless_active("pause")
        if self._paused:
            raise ApplicationError(f"rollout is already paused (by {self._status.paused_by})")

    @workflow.update
    def resume(self, request: ControlRequest) -> str:
        self._accepted(request)
        accepted = sorted(self._drifts)
        for name, drift in self._drifts.items():
            # The exposure as found becomes the one the rollout goes on from.
            self._log("drift", f"{name}: drift accepted ({drift.summary})", service=name, actor=request.actor)
            self._svc[name].weight = drift.found.weight
        self._drifts.clear()
        self._paused = False
        self._status.paused_by = None
        self._log("human", f"resumed{': ' + request.reason if request.reason else ''}", actor=request.actor)
        self._refresh()
        return f"resumed; accepted the drift of {', '.join(accepted)}" if accepted else "resumed"

    @resume.validator
    def _validate_resume(self, request: ControlRequest) -> None:
        self._authorize("resume", request)
        self._refuse_unless_active("resume")
        if not self._paused:
            raise ApplicationError("rollout is not paused; nothing to resume")

    @workflow.update
    def approve(self, request: ControlRequest) -> str:
        self._accepted(request)
        keys = {k for k in self._awaiting if request.service in (None, k[0])}
        self._approved |= keys
        names = ", ".join(sorted(f"{name} step {index + 1}" for name, index in keys))
        self._log(
            "human",
            f"approved {names}{': ' + request.reason if request.reason else ''}",
            actor=request.actor,
            service=request.service,
        )
        self._refresh()
        return f"approved {names}"

    @approve.validator
    def _validate_approve(self, request: ControlRequest) -> None:
        self._authorize("approve", request)
        self._refuse_unless_active("approve")
        if request.service is not None and request.service not in self._settings:
            raise ApplicationError(f"service {request.service!r} is not in this rollout")
        if not any(request.service in (None, name) for name, _ in self._awaiting):
            what = f"service {request.service}" if request.service else "no service"
            raise ApplicationError(f"{what} is awaiting approval right now")

    @workflow.update
    def abort(self, request: ControlRequest) -> str:
        self._accepted(request)
        self._abort = request
        self._log("human", f"abort: {request.reason}", actor=request.actor)
        if self._work is not None:
            self._work.cancel()
        touched = ", ".join(sorted(self._touched)) or "nothing touched yet"
        return f"aborting; rolling back: {touched}"

    @abort.validator
    def _validate_abort(self, request: ControlRequest) -> None:
        self._authorize("abort", request)
        self._refuse_unless_active("abort")

    @workflow.update
    def override(self, request: ControlRequest) -> str:
        self._accepted(request)
        self._override = request
        self._log("human", f"window override: {request.reason}", actor=request.actor)
        waiting = [s.name for s in self._status.services if s.state is ServiceState.WAITING_WINDOW]
        self._refresh()
        going = f"; {', '.join(waiting)} go on now" if waiting else ""
        return f"deploy windows overridden for the rest of this rollout{going}"

    @override.validator
    def _validate_override(self, request: ControlRequest) -> None:
        self._authorize("override", request)
        self._refuse_unless_active("override")
        if not self._windows:
            raise ApplicationError("this rollout has no deploy windows; nothing to override")
        if self._override is not None:
            raise ApplicationError(f"deploy windows are already overridden (by {self._override.actor})")
        if not request.reason:
            raise ApplicationError("an override needs a reason: it is recorded in the audit log")

    # ---- queries ---------------------------------------------------------------------

    @workflow.query
    def status(self) -> RolloutStatus:
        return self._status

    @workflow.query
    def audit(self) -> list[AuditEntry]:
        return self._audit
