"""The demo plan on the demo fleet: real Temporal, real Prometheus, real HTTP traffic.

Every scenario is judged by what the fleet's routers say at the end, not by what the
workflow believes: a rollback must leave every router exactly where it started.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from shiprail.activities.types import BakeRequest
from shiprail.demo.scenarios import SCENARIOS
from shiprail.gates.intervals import SHIFT
from shiprail.gates.sequential import CARRIED_PAIRS
from shiprail.status import Phase, RolloutStatus, ServiceState
from shiprail.workflows.rollout import RolloutWorkflow
from tests.e2e.conftest import DEMO_PLAN, FleetRig
from tests.workflow.helpers import control, eventually, finished, start, status_of, wait_status

RigFactory = Callable[..., FleetRig]
BAD = [name for name, s in SCENARIOS.items() if s.expect == "rolled_back"]


def _failed_gates(status: RolloutStatus) -> dict[str, list[str]]:
    """The gates that stopped a step: on a busy host an absolute latency gate may fail one
    look below its limit while another gate rolls the release back, and that is no catch."""
    return {s.name: [g.name for g in s.gates if g.failed] for s in status.services if s.gates}


async def _gate_story(handle: WorkflowHandle[Any, Any]) -> str:
    """Every gate verdict the rollout recorded, for a failure message that says why."""
    audit = await handle.query(RolloutWorkflow.audit)
    return "\n".join(e.message for e in audit if e.kind in ("gate", "phase"))


def _assert_routers_restored(rig: FleetRig) -> None:
    assert rig.fleet.exposures() == rig.start, "a router did not end where it started"


async def test_good_release_reaches_100_percent_everywhere(
    client: Client, worker: Worker, fleet_rig: RigFactory, rollout_id: str
) -> None:
    rig = fleet_rig("good")
    handle = await start(client, rig.plan, rollout_id)
    status = await finished(handle)
    assert status.phase is Phase.SUCCEEDED, await _gate_story(handle)
    for service in rig.plan.spec.services:
        exposure = rig.fleet.exposures()[service.name]
        assert (exposure.canary_version, exposure.weight) == (service.version, 100)
    # Providers finished before their consumers started.
    first_put = {c.service: c.time for c in reversed(rig.fleet.store.puts())}
    last_put = {c.service: c.time for c in rig.fleet.store.puts()}
    assert last_put["payments"] < first_put["checkout"] and last_put["inventory"] < first_put["checkout"]
    assert last_put["checkout"] < first_put["frontend"]
    assert rig.fleet.load.sent > 1000 and rig.fleet.load.failed < rig.fleet.load.sent * 0.02


@pytest.mark.parametrize("scenario", BAD)
async def test_bad_release_is_caught_by_its_gate_and_rolled_back(
    client: Client, worker: Worker, fleet_rig: RigFactory, rollout_id: str, scenario: str
) -> None:
    expected = SCENARIOS[scenario]
    rig = fleet_rig(scenario)
    handle = await start(client, rig.plan, rollout_id)
    status = await finished(handle)
    assert status.phase is Phase.ROLLED_BACK, await _gate_story(handle)
    failed = _failed_gates(status)
    culprits = {service for service, gates in failed.items() if gates}
    assert culprits and culprits <= set(expected.caught_on), (failed, status.reason)
    assert all(set(failed[s]) <= set(expected.caught_by) for s in culprits), (failed, status.reason)
    _assert_routers_restored(rig)
    # Nothing untouched was ever actuated.
    untouched = {s.name for s in status.services if s.state is ServiceState.UNTOUCHED}
    assert not {c.service for c in rig.fleet.store.puts()} & untouched


async def test_a_histogram_compare_gate_catches_a_slow_canary_during_a_rollout(
    client: Client, worker: Worker, fleet_rig: RigFactory, rollout_id: str
) -> None:
    """The demo plan with `slow` compared at every bucket bound instead of at one."""
    text = DEMO_PLAN.read_text()
    one_bound = (
        '      good: \'http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}",le="0.25"}\'\n'
        '      total: \'http_request_duration_seconds_count{service="{{service}}",version="{{version}}"}\'\n'
    )
    every_bound = '      histogram: \'http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}"}\'\n'
    # Without the absolute p95 backstop, only the histogram gate can catch the slow canary.
    gates = "    gates: [errors, slow, error-ratio, p95-latency]\n"
    assert one_bound in text and gates in text
    text = text.replace(one_bound, every_bound).replace(gates, "    gates: [errors, slow, error-ratio]\n")
    rig = fleet_rig("slow-inventory", plan_text=text)
    assert rig.plan.spec.gates["slow"].histogram is not None  # type: ignore[union-attr]
    handle = await start(client, rig.plan, rollout_id)
    status = await finished(handle)
    assert status.phase is Phase.ROLLED_BACK, await _gate_story(handle)
    assert {s: g for s, g in _failed_gates(status).items() if g} == {"inventory": ["slow"]}, status.reason
    slow = next(g for s in status.services if s.name == "inventory" for g in s.gates if g.name == "slow")
    assert re.search(
        r"of canary requests slower than [\d.]+ m?s vs baseline [\d.]+% slower than", slow.reason
    ), slow.reason
    _assert_routers_restored(rig)


async def _bake_requests(client: Client, handle: WorkflowHandle[Any, Any]) -> list[BakeRequest]:
    """Every bake the rollout scheduled, as the activity received it."""
    requests = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == "bake":
                [request] = await client.data_converter.decode(scheduled.input.payloads, [BakeRequest])
                requests.append(request)
    return requests


async def test_each_step_starts_with_the_noise_its_service_showed_in_the_step_before(
    client: Client, worker: Worker, fleet_rig: RigFactory, rollout_id: str
) -> None:
    """With `slow` compared at every bound, a service's second bake starts from what its
    gate learned in the first (each bound's pairs, residual and wobble), and its first
    bake from nothing. One service, bakes long enough to hold five intervals, and
    enough canary requests an interval that bounds near the median are read interval by
    interval."""
    text = DEMO_PLAN.read_text()
    one_bound = (
        '      good: \'http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}",le="0.25"}\'\n'
        '      total: \'http_request_duration_seconds_count{service="{{service}}",version="{{version}}"}\'\n'
    )
    every_bound = '      histogram: \'http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}"}\'\n'
    defaults = "    steps: [10, 50, 100]\n    bake: 6s\n    interval: 2s\n    gates: [errors, slow, error-ratio, p95-latency]\n"
    others = text.index("    - name: inventory")
    assert one_bound in text and defaults in text and others > 0
    text = text[:others].replace(one_bound, every_bound)
    text = text.replace(
        defaults, "    steps: [30, 50, 100]\n    bake: 12s\n    interval: 2s\n    gates: [slow]\n"
    )
    # Looks two seconds apart: on a busy machine the fleet's load falls short of its rate,
    # and an interval still holds enough canary requests for bounds near the median.
    cadence = "      initial_delay: 1s\n      interval: 1s\n"
    slow_gate = text.index("    slow:\n")
    assert text.index(cadence, slow_gate) < text.index("    p95-latency:\n")
    text = text[:slow_gate] + text[slow_gate:].replace(
        cadence, "      initial_delay: 1s\n      interval: 2s\n", 1
    )
    rig = fleet_rig("good", plan_text=text, rps=150)
    handle = await start(client, rig.plan, rollout_id)
    status = await finished(handle)
    assert status.phase is Phase.SUCCEEDED, await _gate_story(handle)
    requests = await _bake_requests(client, handle)
    assert [(r.service, r.weight) for r in requests] == [
        ("payments", 30),
        ("payments", 50),
        ("payments", 100),
    ]
    assert requests[0].learned == {}
    for later in requests[1:]:
        learned = later.learned["slow"]
        # The count tests' pairs by bound (and the count test's for the bounds read together,
        # `SHIFT`): [Σχ², what they identify of the wobble, pairs].
        for carrier in ("shares", "slow"):
            assert learned[carrier], carrier
            for bound, (chi2, identified, pairs) in learned[carrier].items():
                assert (
                    (bound == SHIFT or float(bound) > 0)
                    and chi2 >= 0
                    and identified > 0
                    and 1 <= pairs <= CARRIED_PAIRS
                ), bound
        # The per-interval test's by bound, and for the bounds read together (`SHIFT`): [χ²,
        # degrees of freedom, the wobble's sums]. On a busy machine the fleet's latency can
        # leave no bound usable interval by interval.
        for bound, (chi2, freedom, _, _) in learned.get("intervals", {}).items():
            assert (bound == SHIFT or float(bound) > 0) and chi2 >= 0 and freedom >= 1, bound
    # The third step knows both steps before it.
    second, third = requests[1].learned["slow"]["shares"], requests[2].learned["slow"]["shares"]
    assert any(
        third[b][2] > second[b][2] or third[b][2] == CARRIED_PAIRS for b in second.keys() & third.keys()
    )


async def test_provider_regression_seen_only_by_its_consumer_rolls_back_both(
    client: Client, worker: Worker, fleet_rig: RigFactory, rollout_id: str
) -> None:
    rig = fleet_rig("corrupt-payments")
    handle = await start(client, rig.plan, rollout_id)
    status = await finished(handle)
    assert status.phase is Phase.ROLLED_BACK
    by_name = {s.name: s for s in status.services}
    # payments' own gates never saw anything wrong; checkout's did.
    assert by_name["payments"].step == 3 and not _failed_gates(status).get("payments"), status.reason
    assert _failed_gates(status)["checkout"]
    assert by_name["payments"].state is ServiceState.RESTORED
    assert by_name["checkout"].state is ServiceState.RESTORED
    restores = [c for c in rig.fleet.store.puts() if c.version == rig.start[c.service].stable_version]
    assert [c.service for c in restores].index("checkout") < [c.service for c in restores].index("payments")
    _assert_routers_restored(rig)


async def _inconclusive_evaluations(client: Client, handle: WorkflowHandle[Any, Any], at_least: int) -> bool:
    """Read the running bake activities' heartbeats: their gate trackers, live."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if not pending.heartbeat_details.payloads:
            continue
        (state,) = client.data_converter.payload_converter.from_payloads(pending.heartbeat_details.payloads)
        counts = [t["inconclusives"] for t in state["trackers"].values()]
        if counts and min(counts) >= at_least:
            return True
    return False


async def _baking_first_step(handle: WorkflowHandle[Any, Any]) -> RolloutStatus:
    """Every service of the first wave baking at 10 %: the wave's services are set one by
    one, and a snapshot taken when only the first of them was would see the others move."""

    def first_wave_baking(s: RolloutStatus) -> bool:
        first = [x for x in s.services if x.wave == min(y.wave for y in s.services)]
        return all(x.state is ServiceState.BAKING and x.weight == 10 for x in first)

    return await wait_status(handle, first_wave_baking, timeout=30, what="the first wave baking at 10%")


async def test_prometheus_down_mid_bake_never_passes_a_step(
    client: Client, worker: Worker, fleet_rig: RigFactory, rollout_id: str
) -> None:
    rig = fleet_rig("good")
    handle = await start(client, rig.plan, rollout_id)
    await _baking_first_step(handle)
    rig.prometheus.stop()
    stopped_at = time.time()
    status = await finished(handle)
    assert status.phase is Phase.ROLLED_BACK
    assert "query failed" in status.reason and "failing closed" in status.reason
    # After Prometheus went away, the only changes were restores.
    later = [c for c in rig.fleet.store.puts() if c.time > stopped_at]
    assert later and all(c.version == rig.start[c.service].stable_version for c in later)
    _assert_routers_restored(rig)


async def test_prometheus_down_holds_when_the_plan_tolerates_it(
    client: Client, worker: Worker, fleet_rig: RigFactory, rollout_id: str
) -> None:
    from tests.e2e.conftest import DEMO_PLAN

    patient = DEMO_PLAN.read_text().replace("inconclusive_limit: 3", "inconclusive_limit: 1000")
    rig = fleet_rig("good", plan_text=patient)
    handle = await start(client, rig.plan, rollout_id)
    baking = await _baking_first_step(handle)
    rig.prometheus.stop()
    puts_before = len(rig.fleet.store.puts())
    # Gates keep answering "inconclusive" well past the 6 s bake and the usual limit; nothing moves.
    await eventually(
        lambda: _inconclusive_evaluations(client, handle, at_least=6), timeout=40, what="inconclusive gates"
    )
    assert len(rig.fleet.store.puts()) == puts_before
    held = await status_of(handle)
    assert {x.name: x.weight for x in held.services} == {x.name: x.weight for x in baking.services}
    rig.prometheus.start(rig.fleet.metrics_targets)
    await wait_status(
        handle, lambda s: any(x.weight == 50 for x in s.services), timeout=60, what="the next step"
    )
    await handle.execute_update(RolloutWorkflow.abort, control(reason="test over"))
    status = await finished(handle)
    assert status.phase is Phase.ROLLED_BACK
    _assert_routers_restored(rig)
