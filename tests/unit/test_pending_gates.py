"""A sequential gate that has not decided is shown as pending with its evidence, never as ✓."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from rich.console import Console

from shiprail.cli._render import status_table
from shiprail.gates import Verdict, judge
from shiprail.gates.base import QueryResult
from shiprail.gates.dryrun import DryRunRow
from shiprail.plan.models import Gate
from shiprail.status import GateStatus, Phase, RolloutStatus, ServiceStatus, render_details
from tests.helpers import gate_context

ERRORS: Gate = TypeAdapter(Gate).validate_python(
    {"type": "compare", "bad": "e", "total": "t", "interval": "10s"}
)


def _look(seconds: int, canary_bad: float, canary: float) -> dict[str, QueryResult]:
    return {
        "canary_bad": QueryResult(value=canary_bad),
        "canary_total": QueryResult(value=canary),
        "baseline_bad": QueryResult(value=canary * 9 * 0.01),
        "baseline_total": QueryResult(value=canary * 9),
    }


def _verdict_of_a_bad_canary_seen_briefly() -> Any:
    # 12 % of the canary's requests fail against 1 % of the baseline's, but after 25
    # requests the test has not yet rejected: it must not read as healthy.
    memory: dict[str, Any] = {}
    judge("errors", ERRORS, gate_context(10), _look(10, 1, 8), memory)
    return judge("errors", ERRORS, gate_context(20), _look(20, 3, 25), memory)


def test_an_undecided_sequential_gate_passes_but_is_pending() -> None:
    verdict = _verdict_of_a_bad_canary_seen_briefly()
    assert verdict.status is Verdict.PASS and verdict.pending
    assert 0 < float(verdict.evidence["p_value"]) <= 1 and "after 250 requests" in verdict.reason


def _status(gate: GateStatus) -> RolloutStatus:
    return RolloutStatus(
        id="r1",
        plan="p",
        phase=Phase.RUNNING,
        services=[
            ServiceStatus(
                name="payments", version="2", wave=1, steps=[10, 100], step=1, weight=10, gates=[gate]
            )
        ],
    )


def _pending_gate() -> GateStatus:
    v = _verdict_of_a_bad_canary_seen_briefly()
    return GateStatus(
        name="errors",
        status=v.status.value,
        value=v.value,
        threshold=v.threshold,
        reason=v.reason,
        pending=v.pending,
        p_value=float(v.evidence["p_value"]),
        requests=250,
    )


def test_the_live_table_shows_pending_with_the_evidence_not_a_tick() -> None:
    console = Console(width=200, record=True)
    console.print(status_table(_status(_pending_gate())))
    text = console.export_text()
    assert "… errors pending, no evidence of harm yet: canary error rate 12% vs baseline" in text
    assert "✓" not in text


def test_the_web_ui_details_and_json_say_pending() -> None:
    status = _status(_pending_gate())
    assert "errors: pending (canary error rate 12%" in render_details(status)
    gate = status.public()["services"][0]["gates"][0]
    assert gate["pending"] is True and gate["requests"] == 250 and 0 < gate["p_value"] <= 1


def test_a_failed_or_settled_gate_is_never_pending() -> None:
    failed = _pending_gate().model_copy(update={"status": "fail"})
    assert failed.shown == "fail"
    settled = GateStatus(name="error-ratio", status="pass", value=0.01, threshold="≤ 0.05")
    assert settled.shown == "pass"
    console = Console(width=200, record=True)
    console.print(status_table(_status(settled)))
    assert "✓ error-ratio" in console.export_text()


def test_gates_eval_json_carries_pending() -> None:
    row = DryRunRow("payments", _verdict_of_a_bad_canary_seen_briefly())
    assert row.to_dict()["pending"] is True and row.to_dict()["verdict"] == "pass"
