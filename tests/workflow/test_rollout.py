"""The rollout workflow on the real Temporal dev server with an in-process HTTP actuator."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.worker import Worker

from shiprail import visibility
from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.devstack.temporal import TemporalDevServer, temporal_binary
from shiprail.plan import RolloutPlan
from shiprail.status import Exposure, Phase, RolloutStatus, ServiceState
from shiprail.workflows.rollout import RolloutWorkflow
from tests.workflow.helpers import WEIGHT_GATE, control, make_plan, refused, start, status_of, wait_status

pytestmark = pytest.mark.usefixtures("worker")


def seed(actuator: ActuatorServer, *services: str, stable: str = "1.0") -> dict[str, Exposure]:
    for name in services:
        actuator.store.add(name, stable)
    return {name: actuator.store.exposures[name] for name in services}


def put_weights(actuator: ActuatorServer, service: str) -> list[float | None]:
    return [c.weight for c in actuator.store.puts() if c.service == service]


async def test_chain_rolls_in_dependency_order(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    seed(actuator, "inventory", "payments", "checkout")
    plan = make_plan(
        actuator.url,
        [
            {"name": "checkout", "depends_on": ["payments"]},
            {"name": "payments", "depends_on": ["inventory"]},
            {"name": "inventory"},
        ],
    )
    result = await (await start(client, plan, rollout_id)).result()
    assert result.phase is Phase.SUCCEEDED
    puts = [(c.service, c.weight) for c in actuator.store.puts()]
    assert puts == [(s, w) for s in ("inventory", "payments", "checkout") for w in (10.0, 50.0, 100.0)]
    assert all(actuator.store.exposures[s].weight == 100 for s in ("inventory", "payments", "checkout"))
    assert [s.state for s in result.services] == [ServiceState.DONE] * 3


async def test_diamond_middle_wave_runs_in_parallel(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    seed(actuator, "ledger", "payments", "inventory", "checkout")
    plan = make_plan(
        actuator.url,
        [
            {"name": "ledger"},
            {"name": "payments", "depends_on": ["ledger"]},
            {"name": "inventory", "depends_on": ["ledger"]},
            {"name": "checkout", "depends_on": ["payments", "inventory"]},
        ],
        defaults={"steps": [50, 100], "bake": "1s", "interval": "1s"},
    )
    result = await (await start(client, plan, rollout_id)).result()
    assert result.phase is Phase.SUCCEEDED
    calls = actuator.store.puts()
    times = {(c.service, c.weight): c.time for c in calls}
    # both middle services start before either finishes, and both finish before checkout starts
    assert times[("inventory", 50.0)] < times[("payments", 100.0)]
    assert times[("payments", 50.0)] < times[("inventory", 100.0)]
    assert max(times[("payments", 100.0)], times[("inventory", 100.0)]) < times[("checkout", 50.0)]
    assert times[("ledger", 100.0)] < min(times[("payments", 50.0)], times[("inventory", 50.0)])


async def test_lockstep_moves_a_wave_together(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    seed(actuator, "a", "b", "c")
    plan = make_plan(actuator.url, [{"name": "a"}, {"name": "b"}, {"name": "c", "bake": "2s"}], lockstep=True)
    result = await (await start(client, plan, rollout_id)).result()
    assert result.phase is Phase.SUCCEEDED
    calls = actuator.store.puts()
    for weight, after in ((10.0, 50.0), (50.0, 100.0)):
        last_of_step = max(c.time for c in calls if c.weight == weight)
        first_of_next = min(c.time for c in calls if c.weight == after)
        assert last_of_step < first_of_next
        # the next step waits for the slowest bake of the wave (c bakes 2 s)
        c_step = next(c.time for c in calls if c.service == "c" and c.weight == weight)
        assert first_of_next - c_step >= 2.0


def gated_plan(actuator: ActuatorServer, prometheus: PrometheusServer, **spec: Any):  # type: ignore[no-untyped-def]
    # wave 1: ledger, search; wave 2: payments (gated: fails at step 3, 50%); wave 3: checkout
    return make_plan(
        actuator.url,
        [
            {"name": "ledger"},
            {"name": "search"},
            {"name": "payments", "depends_on": ["ledger"], "gates": ["weight"]},
            {"name": "checkout", "depends_on": ["payments"]},
        ],
        prometheus={"url": prometheus.url},
        gates={"weight": WEIGHT_GATE},
        defaults={"steps": [5, 20, 50, 100], "bake": "1s", "interval": "1s"},
        **spec,
    )


async def test_gate_failure_restores_every_touched_service_consumers_first(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    before = seed(actuator, "ledger", "search", "payments", "checkout")
    actuator.store.add("search", "1.0", canary_version="1.9", weight=5)  # a canary already running
    before["search"] = actuator.store.exposures["search"]
    handle = await start(client, gated_plan(actuator, prometheus), rollout_id)
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK
    assert "payments" in result.reason and "vector" not in result.reason
    assert "50 > max 20" in result.reason
    # every service is back exactly where it was
    assert actuator.store.exposures == before
    puts = actuator.store.puts()
    assert not [c for c in puts if c.service == "checkout"], "untouched service was actuated"
    payments_steps = [
        c.weight for c in puts if c.service == "payments" and "restore" not in (c.idempotency_key or "")
    ]
    assert payments_steps == [5.0, 20.0, 50.0]
    restores = [c for c in puts if (c.idempotency_key or "").endswith("/restore")]
    assert next(c.service for c in restores) == "payments"
    assert {c.service for c in restores[1:]} == {"ledger", "search"}
    assert next(c for c in restores if c.service == "search").weight == 5
    gates = next(s for s in result.services if s.name == "payments").gates
    assert gates[0].status == "fail" and gates[0].failed and gates[0].value == 50


async def test_sibling_stops_when_its_change_in_flight_lands_after_a_failure(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    # The sibling's router answers slowly, so its first change is still in flight when
    # payments fails; that change lands, and the sibling must not take another step.
    slow = ActuatorServer(latency=3.0).start()
    try:
        seed(actuator, "payments")
        before = seed(slow, "search")
        plan = make_plan(
            actuator.url,
            [
                {"name": "payments", "gates": ["weight"]},
                {"name": "search", "actuator": {"type": "http", "url": slow.url}},
            ],
            prometheus={"url": prometheus.url},
            gates={"weight": WEIGHT_GATE},
        )
        result = await (await start(client, plan, rollout_id)).result()
        assert result.phase is Phase.ROLLED_BACK
        puts = slow.store.puts()
        steps = [c for c in puts if not (c.idempotency_key or "").endswith("/restore")]
        assert [c.weight for c in steps] == [10.0]
        assert slow.store.exposures == before
        # The rollback starts at once, but not for a change still in flight: its restore
        # is sent only once the change has landed, or the change could overtake it.
        restore = next(c for c in puts if (c.idempotency_key or "").endswith("/restore"))
        assert restore.received is not None and restore.received >= steps[0].time
    finally:
        slow.stop()


def _event_index(history: WorkflowHistory, found: Callable[[Any], bool], what: str) -> int:
    for index, event in enumerate(history.events):
        if found(event):
            return index
    pytest.fail(f"no {what} in the history")


def _scheduled(event: Any) -> tuple[str, dict[str, Any]] | None:
    """The activity type and request of an ActivityTaskScheduled event."""
    if not event.HasField("activity_task_scheduled_event_attributes"):
        return None
    attributes = event.activity_task_scheduled_event_attributes
    return attributes.activity_type.name, json.loads(attributes.input.payloads[0].data)


def _schedules_bake(event: Any, service: str) -> bool:
    scheduled = _scheduled(event)
    return scheduled is not None and scheduled[0] == "bake" and scheduled[1]["service"] == service


def _sets_phase(event: Any, phase: Phase) -> bool:
    if not event.HasField("upsert_workflow_search_attributes_event_attributes"):
        return False
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    value = fields.get(visibility.PHASE.name)
    return value is not None and json.loads(value.data) == phase.value


async def test_a_rollback_starts_before_the_other_services_are_called_off(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    """Calling off a sibling's bake is reported back one activation later; the rollback
    does not wait for it."""
    before = seed(actuator, "payments", "search")
    plan = make_plan(
        actuator.url,
        [{"name": "payments", "gates": ["weight"]}, {"name": "search", "bake": "60s"}],
        prometheus={"url": prometheus.url},
        gates={"weight": WEIGHT_GATE},
    )
    handle = await start(client, plan, rollout_id)
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK and "payments" in result.reason
    assert actuator.store.exposures == before
    history = await handle.fetch_history()
    searchs_bake = history.events[_event_index(history, lambda e: _schedules_bake(e, "search"), "bake")]
    rolling_back = _event_index(history, lambda e: _sets_phase(e, Phase.ROLLING_BACK), "rolling_back phase")
    called_off = _event_index(
        history,
        lambda e: (
            e.HasField("activity_task_cancel_requested_event_attributes")
            and e.activity_task_cancel_requested_event_attributes.scheduled_event_id == searchs_bake.event_id
        ),
        "cancel request for search's bake",
    )
    assert rolling_back < called_off


async def test_scope_dependents_leaves_unrelated_services_alone(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    seed(actuator, "ledger", "search", "payments", "checkout")
    plan = gated_plan(actuator, prometheus, rollback={"scope": "dependents"})
    result = await (await start(client, plan, rollout_id)).result()
    assert result.phase is Phase.ROLLED_BACK
    restores = [c.service for c in actuator.store.puts() if (c.idempotency_key or "").endswith("/restore")]
    assert restores == ["payments"]
    assert actuator.store.exposures["ledger"].weight == 100
    assert actuator.store.exposures["payments"].weight == 0


async def test_pause_holds_across_a_bake_boundary_then_resume(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    seed(actuator, "a")
    plan = make_plan(
        actuator.url, [{"name": "a"}], defaults={"steps": [10, 50, 100], "bake": "2s", "interval": "1s"}
    )
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING, what="baking")
    assert "paused" in await handle.execute_update(RolloutWorkflow.pause, control(reason="investigating"))
    held = await wait_status(handle, lambda s: s.services[0].state is ServiceState.HOLDING, what="holding")
    assert held.phase is Phase.PAUSED and held.services[0].weight == 10
    assert re.search("already paused", await refused(handle, RolloutWorkflow.pause, control(reason="again")))
    await asyncio.sleep(2.5)  # longer than a bake: the weight must not move while paused
    assert put_weights(actuator, "a") == [10.0]
    assert (await status_of(handle)).phase is Phase.PAUSED
    await handle.execute_update(RolloutWorkflow.resume, control())
    result = await handle.result()
    assert result.phase is Phase.SUCCEEDED and put_weights(actuator, "a") == [10.0, 50.0, 100.0]
    assert re.search("already completed", await refused(handle, RolloutWorkflow.resume, control()))


async def test_failing_gate_while_paused_still_rolls_back(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    import time

    seed(actuator, "a")
    # Prometheus's time() passes the bound for the first few seconds, then fails it: the
    # first bake passes, the hold that follows must catch the failure.
    gate = {"type": "threshold", "query": "vector(time())", "max": time.time() + 6, "inconclusive_limit": 0}
    plan = make_plan(
        actuator.url,
        [{"name": "a", "gates": ["clock"]}],
        prometheus={"url": prometheus.url},
        gates={"clock": gate},
    )
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING, what="baking")
    await handle.execute_update(RolloutWorkflow.pause, control(reason="hold"))
    await wait_status(handle, lambda s: s.services[0].state is ServiceState.HOLDING, what="holding")
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.phase is Phase.ROLLED_BACK
    assert "while paused at 10%" in result.reason
    assert put_weights(actuator, "a") == [10.0, 0.0]
    assert actuator.store.exposures["a"].weight == 0


async def test_resume_refused_when_not_paused(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    seed(actuator, "a")
    handle = await start(client, make_plan(actuator.url, [{"name": "a"}]), rollout_id)
    assert re.search("not paused", await refused(handle, RolloutWorkflow.resume, control()))
    assert (await handle.result()).phase is Phase.SUCCEEDED


async def test_approval_before_full(client: Client, actuator: ActuatorServer, rollout_id: str) -> None:
    seed(actuator, "a", "b")
    plan = make_plan(
        actuator.url,
        [{"name": "a"}, {"name": "b", "approval": "none"}],
        defaults={"steps": [10, 100], "bake": "1s", "interval": "1s", "approval": "before_full"},
    )
    handle = await start(client, plan, rollout_id)
    assert re.search(
        "awaiting approval", await refused(handle, RolloutWorkflow.approve, control(service="b"))
    )
    waiting = await wait_status(handle, lambda s: s.phase is Phase.AWAITING_APPROVAL, what="approval")
    assert waiting.services[0].state is ServiceState.AWAITING_APPROVAL
    assert put_weights(actuator, "a") == [10.0]
    assert re.search(
        "not in this rollout", await refused(handle, RolloutWorkflow.approve, control(service="nope"))
    )
    answer = await handle.execute_update(RolloutWorkflow.approve, control(service="a", reason="looks good"))
    assert "a step 2" in answer
    result = await handle.result()
    assert result.phase is Phase.SUCCEEDED
    audit = await handle.query(RolloutWorkflow.audit)
    approval = [e for e in audit if e.kind == "human" and "approved" in e.message]
    assert approval and approval[0].actor == "tester" and "looks good" in approval[0].message


async def test_abort_rolls_back_and_second_abort_is_refused(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    before = seed(actuator, "a", "b")
    plan = make_plan(
        actuator.url,
        [{"name": "a"}, {"name": "b", "depends_on": ["a"]}],
        defaults={"steps": [10, 50, 100], "bake": "3s", "interval": "1s"},
    )
    handle = await start(client, plan, rollout_id)
    await wait_status(
        handle,
        lambda s: s.services[0].step == 2 and s.services[0].state is ServiceState.BAKING,
        what="step 2 baking",
    )
    answer = await handle.execute_update(RolloutWorkflow.abort, control(reason="bad smell"))
    assert "rolling back: a" in answer
    assert re.search(
        "rolling back|rolled_back", await refused(handle, RolloutWorkflow.abort, control(reason="again"))
    )
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK and "aborted by tester: bad smell" in result.reason
    assert actuator.store.exposures == before
    assert not [c for c in actuator.store.calls if c.service == "b" and c.method == "PUT"]


async def test_cancel_from_the_ui_compensates(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    before = seed(actuator, "a")
    plan = make_plan(
        actuator.url, [{"name": "a"}], defaults={"steps": [10, 100], "bake": "5s", "interval": "1s"}
    )
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[0].state is ServiceState.BAKING, what="baking")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert actuator.store.exposures == before
    description = await handle.describe()
    phase = [p.value for p in description.typed_search_attributes if p.key.name == "ShiprailPhase"]
    assert phase == ["rolled_back"]
    # The bake called off by the cancellation does not count as a failed step.
    final = RolloutStatus.model_validate(await description.memo_value("final"))
    assert final.reason == "workflow cancelled"


async def test_transient_actuator_errors_are_retried(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    seed(actuator, "a")
    actuator.store.fail("a", "PUT", status=503, times=2)
    result = await (await start(client, make_plan(actuator.url, [{"name": "a"}]), rollout_id)).result()
    assert result.phase is Phase.SUCCEEDED
    assert [c.status for c in actuator.store.calls if c.method == "PUT"][:3] == [503, 503, 200]
    assert put_weights(actuator, "a") == [10.0, 50.0, 100.0]


async def test_permanent_actuator_error_rolls_back(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    before = seed(actuator, "a", "b")
    plan = make_plan(actuator.url, [{"name": "a"}, {"name": "b", "depends_on": ["a"]}])
    actuator.store.fail("b", "PUT", status=403, times=1)
    result = await (await start(client, plan, rollout_id)).result()
    assert result.phase is Phase.ROLLED_BACK
    assert "HTTP 403" in result.reason
    assert next(c.status for c in actuator.store.calls if c.service == "b" and c.method == "PUT") == 403
    assert actuator.store.exposures == before


async def test_unrestorable_service_ends_rollback_failed(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    seed(actuator, "a")
    plan = make_plan(
        actuator.url,
        [{"name": "a", "gates": ["weight"]}],
        prometheus={"url": prometheus.url},
        # Two failed evaluations tolerated: the fault below is in place long before the restore.
        gates={"weight": {**WEIGHT_GATE, "failure_limit": 2}},
        rollback={"timeout": "3s"},
        defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s"},
    )
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[0].step == 2, what="step 2")
    actuator.store.fail("a", "PUT", status=500, times=1000)
    result = await handle.result()
    assert result.phase is Phase.ROLLBACK_FAILED
    assert result.unrestored == ["a"] and "NOT restored: a" in result.reason
    assert result.services[0].state is ServiceState.RESTORE_FAILED


def _restore_activities(history: WorkflowHistory) -> set[str]:
    """Services whose restore was scheduled as an ordinary (durable, retried) activity."""
    requests = [scheduled[1] for event in history.events if (scheduled := _scheduled(event))]
    return {r["service"] for r in requests if str(r.get("idempotency_key", "")).endswith("/restore")}


async def _fail_first_restore_of_a(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str, status: int
) -> tuple[RolloutStatus, WorkflowHistory]:
    """`a` then `b`; `b` fails its gate at 50 %, and `a`'s first restore answers `status`."""
    plan = make_plan(
        actuator.url,
        [{"name": "a"}, {"name": "b", "depends_on": ["a"], "gates": ["weight"]}],
        prometheus={"url": prometheus.url},
        gates={"weight": WEIGHT_GATE},
        rollback={"timeout": "30s"},
    )
    handle = await start(client, plan, rollout_id)
    # `a` is at 100 % before `b` starts, so the next PUT for `a` is its restore.
    await wait_status(handle, lambda s: s.services[1].step >= 1, what="b rolling")
    actuator.store.fail("a", "PUT", status=status, times=1)
    return await handle.result(), await handle.fetch_history()


async def test_restores_run_in_the_worker_and_fall_back_to_a_retried_activity(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    before = seed(actuator, "a", "b")
    result, history = await _fail_first_restore_of_a(client, actuator, prometheus, rollout_id, 503)
    assert result.phase is Phase.ROLLED_BACK
    assert actuator.store.exposures == before
    restores_of_a = [
        c.status
        for c in actuator.store.calls
        if c.service == "a" and (c.idempotency_key or "").endswith("/restore")
    ]
    assert restores_of_a == [503, 200]
    # `b` was restored by its local first attempt; only `a` needed the durable activity.
    assert _restore_activities(history) == {"a"}
    assert _local_activities(history) == 1


async def test_a_rejected_restore_is_not_retried(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    seed(actuator, "a", "b")
    result, history = await _fail_first_restore_of_a(client, actuator, prometheus, rollout_id, 403)
    assert result.phase is Phase.ROLLBACK_FAILED
    assert result.unrestored == ["a"] and "HTTP 403" in result.services[0].note
    restores_of_a = [
        c for c in actuator.store.calls if c.service == "a" and (c.idempotency_key or "").endswith("/restore")
    ]
    assert [c.status for c in restores_of_a] == [403]
    assert _restore_activities(history) == set()


async def test_a_wave_is_restored_together_and_only_its_failures_are_retried(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    """`a`, `b`, `c` form one wave under `d`; `a`'s first restore fails, `b`'s is refused."""
    before = seed(actuator, "a", "b", "c", "d")
    plan = make_plan(
        actuator.url,
        [
            {"name": "a"},
            {"name": "b"},
            {"name": "c"},
            {"name": "d", "depends_on": ["a", "b", "c"], "gates": ["weight"]},
        ],
        prometheus={"url": prometheus.url},
        gates={"weight": WEIGHT_GATE},
        rollback={"timeout": "30s"},
    )
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[3].step >= 1, what="d rolling")
    actuator.store.fail("a", "PUT", status=503, times=1)
    actuator.store.fail("b", "PUT", status=403, times=1)
    result = await handle.result()
    history = await handle.fetch_history()

    assert result.phase is Phase.ROLLBACK_FAILED
    assert result.unrestored == ["b"] and "HTTP 403" in result.services[1].note
    assert [s.state for s in result.services] == [
        ServiceState.RESTORED,
        ServiceState.RESTORE_FAILED,
        ServiceState.RESTORED,
        ServiceState.RESTORED,
    ]
    assert {n: actuator.store.exposures[n] for n in ("a", "c", "d")} == {
        n: before[n] for n in ("a", "c", "d")
    }
    restores = [c for c in actuator.store.calls if (c.idempotency_key or "").endswith("/restore")]
    assert [c.status for c in restores if c.service == "a"] == [503, 200]
    assert [c.status for c in restores if c.service == "b"] == [403]
    # consumers first: d's wave is restored before any of the wave it depends on
    assert restores[0].service == "d" and {c.service for c in restores[1:4]} == {"a", "b", "c"}
    # one local activity for both waves; only the retryable failure went on to a durable activity
    assert _local_activities(history) == 1
    assert _restore_activities(history) == {"a"}


def _chain_failing_at_the_end(
    actuator: ActuatorServer, prometheus: PrometheusServer
) -> tuple[dict[str, Exposure], RolloutPlan]:
    """`a` ← `b` ← `c`: three waves to restore; `c` fails its gate at 50 %."""
    before = seed(actuator, "a", "b", "c")
    plan = make_plan(
        actuator.url,
        [
            {"name": "a"},
            {"name": "b", "depends_on": ["a"]},
            {"name": "c", "depends_on": ["b"], "gates": ["weight"]},
        ],
        prometheus={"url": prometheus.url},
        gates={"weight": WEIGHT_GATE},
        rollback={"timeout": "30s"},
    )
    return before, plan


async def test_a_failed_restore_is_retried_before_the_next_wave_starts(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    before, plan = _chain_failing_at_the_end(actuator, prometheus)
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[2].step >= 1, what="c rolling")
    actuator.store.fail("b", "PUT", status=503, times=1)
    result = await handle.result()
    history = await handle.fetch_history()

    assert result.phase is Phase.ROLLED_BACK
    assert actuator.store.exposures == before
    restores = [
        (c.service, c.status) for c in actuator.store.calls if (c.idempotency_key or "").endswith("/restore")
    ]
    assert restores == [("c", 200), ("b", 503), ("b", 200), ("a", 200)]
    # the local activity stopped at `b`'s wave; after the retry, a second one restored `a`
    assert _local_activities(history) == 2
    assert _restore_activities(history) == {"b"}


async def test_a_slow_rollback_shows_its_progress_as_it_goes(
    client: Client, actuator: ActuatorServer, prometheus: PrometheusServer, rollout_id: str
) -> None:
    """A local activity holds the workflow task, and every status query, until it returns:
    past its budget the waves left go through activities the UI sees one by one."""
    before, plan = _chain_failing_at_the_end(actuator, prometheus)
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.services[2].step >= 1, what="c rolling")
    actuator.latency = 1.2  # each change now outlasts the local activity's 1 s budget
    midway = await wait_status(
        handle,
        lambda s: s.phase is Phase.ROLLING_BACK and s.services[2].state is ServiceState.RESTORED,
        what="c restored while the rollback goes on",
    )
    assert midway.services[0].state is ServiceState.ROLLING_BACK
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK
    assert actuator.store.exposures == before
    history = await handle.fetch_history()
    assert _local_activities(history) == 1
    assert _restore_activities(history) == {"a", "b"}


def _local_activities(history: WorkflowHistory) -> int:
    return sum(
        e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    )


async def test_rollouts_sharing_a_service_never_overlap(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    seed(actuator, "shared", "x", "y")
    first = await start(
        client, make_plan(actuator.url, [{"name": "shared"}, {"name": "x"}]), rollout_id + "-1"
    )
    await wait_status(first, lambda s: s.phase is Phase.RUNNING, what="first running")
    second = await start(
        client,
        make_plan(actuator.url, [{"name": "shared", "version": "3.0"}, {"name": "y"}]),
        rollout_id + "-2",
    )
    pending = await wait_status(second, lambda s: s.lock_holder is not None, what="second pending")
    assert pending.phase is Phase.PENDING and pending.lock_holder == rollout_id + "-1"
    no_wait = await start(
        client, make_plan(actuator.url, [{"name": "shared"}]), rollout_id + "-3", wait_for_locks=False
    )
    refused = await no_wait.result()
    assert refused.phase is Phase.FAILED and f"locked by rollout {rollout_id}-1" in refused.reason
    assert (await first.result()).phase is Phase.SUCCEEDED
    assert (await second.result()).phase is Phase.SUCCEEDED
    shared = [c for c in actuator.store.puts() if c.service == "shared"]
    assert [c.version for c in shared] == ["2.0"] * 3 + ["3.0"] * 3
    assert not [c for c in actuator.store.calls if c.service == "y" and c.time < shared[2].time]


async def _holder_and_waiter(
    client: Client, actuator: ActuatorServer, rollout_id: str, bake: str
) -> tuple[WorkflowHandle[Any, RolloutStatus], WorkflowHandle[Any, RolloutStatus]]:
    """A rollout holding the lock of `shared` through a long bake, and a second one waiting
    for it."""
    seed(actuator, "shared")
    plan = make_plan(
        actuator.url, [{"name": "shared"}], defaults={"steps": [10, 100], "bake": bake, "interval": "1s"}
    )
    holder = await start(client, plan, rollout_id + "-1")
    await wait_status(holder, lambda s: s.phase is Phase.RUNNING, what="holder running")
    waiter = await start(client, make_plan(actuator.url, [{"name": "shared"}]), rollout_id + "-2")
    await wait_status(waiter, lambda s: s.lock_holder is not None, what="waiter pending")
    return holder, waiter


async def test_lock_released_when_holder_is_terminated(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    holder, waiter = await _holder_and_waiter(client, actuator, rollout_id, "30s")
    await holder.terminate("test")
    assert (await waiter.result()).phase is Phase.SUCCEEDED


async def test_waiter_takes_a_lock_as_soon_as_it_is_free(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    """A released lock is taken within a second or two, not at the waiter's next poll: with
    back-off polling (1, 2, 4, 8 s) a release 8 s into the wait was noticed 7 s late."""
    holder, waiter = await _holder_and_waiter(client, actuator, rollout_id, "60s")
    await asyncio.sleep(8)  # the scenario: the holder keeps the lock a while
    released = time.time()
    await holder.terminate("test")
    assert (await waiter.result()).phase is Phase.SUCCEEDED
    first = min(c.time for c in actuator.store.puts() if c.rollout_id == rollout_id + "-2")
    assert first - released < 4.0, f"the waiter took the lock {first - released:.1f} s after its release"


async def test_rolled_back_rollout_is_found_by_search_attributes(
    client: Client,
    actuator: ActuatorServer,
    prometheus: PrometheusServer,
    temporal_server: TemporalDevServer,
    rollout_id: str,
) -> None:
    seed(actuator, "ledger", "search", "payments", "checkout")
    result = await (await start(client, gated_plan(actuator, prometheus), rollout_id)).result()
    assert result.phase is Phase.ROLLED_BACK
    query = 'ShiprailServices = "payments" AND ShiprailPhase = "rolled_back"'

    def listed() -> list[str]:
        output = subprocess.run(
            [
                temporal_binary(),
                "workflow",
                "list",
                "--address",
                temporal_server.address,
                "--query",
                query,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [w["execution"]["workflowId"] for w in json.loads(output or "[]")]

    from tests.workflow.helpers import eventually

    async def found() -> bool:
        return rollout_id in await asyncio.to_thread(listed)

    await eventually(found, 15, "visibility to index the rollout")


async def test_history_stays_small_for_a_large_plan(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    names = [f"svc-{i:02d}" for i in range(50)]
    seed(actuator, *names)
    steps = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    plan = make_plan(
        actuator.url, [{"name": n} for n in names], defaults={"steps": steps, "bake": "0s", "interval": "0s"}
    )
    handle = await start(client, plan, rollout_id)
    assert (await handle.result()).phase is Phase.SUCCEEDED
    history = await handle.fetch_history()
    per_service_step = len(history.events) / (len(names) * len(steps))
    assert per_service_step <= 15, f"{len(history.events)} events, {per_service_step:.1f} per service-step"


async def test_worker_killed_mid_bake_continues_without_duplicate_actuation(
    client: Client,
    actuator: ActuatorServer,
    temporal_server: TemporalDevServer,
    rollout_id: str,
    worker: Worker,
) -> None:
    import sys

    seed(actuator, "a", "b")
    queue = f"kill-{rollout_id}"
    plan = make_plan(
        actuator.url,
        [{"name": "a"}, {"name": "b", "depends_on": ["a"]}],
        defaults={"steps": [10, 50, 100], "bake": "4s", "interval": "1s"},
    )
    argv = [
        sys.executable,
        "-m",
        "shiprail",
        "worker",
        "--address",
        temporal_server.address,
        "--task-queue",
        queue,
    ]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second: subprocess.Popen[bytes] | None = None
    try:
        handle = await start(client, plan, rollout_id, task_queue=queue)
        await wait_status(
            handle,
            lambda s: s.services[0].step == 2 and s.services[0].state is ServiceState.BAKING,
            timeout=60,
            what="a baking at step 2",
        )
        first.kill()
        first.wait()
        second = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = await asyncio.wait_for(handle.result(), 120)
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert result.phase is Phase.SUCCEEDED
    for service in ("a", "b"):
        assert put_weights(actuator, service) == [10.0, 50.0, 100.0]


async def test_a_service_already_serving_the_version_is_skipped_not_rolled_backwards(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    actuator.store.add("already-a", "2.0")  # serves 2.0 as stable already
    actuator.store.add("already-b", "1.0", canary_version="2.0", weight=100)  # 2.0 at 100 % as canary
    actuator.store.add("already-c", "1.0")
    plan = make_plan(actuator.url, [{"name": "already-a"}, {"name": "already-b"}, {"name": "already-c"}])
    result = await (await start(client, plan, rollout_id)).result()
    assert result.phase is Phase.SUCCEEDED
    notes = {s.name: (s.state, s.note) for s in result.services}
    assert notes["already-a"] == (ServiceState.DONE, "already serving 2.0 at 100%: skipped")
    assert notes["already-b"] == (ServiceState.DONE, "already serving 2.0 at 100%: skipped")
    assert {c.service for c in actuator.store.puts()} == {"already-c"}
