"""A smoke run of every part of the orchestrator benchmark, tiny, on the session's servers.

It checks that the benchmark still drives shiprail as the full run does and that what it
reports holds together, not how fast anything is: those numbers live in bench/results.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from bench.orchestrator import Stack, history_size, rollback_latency, scale, step_overhead
from bench.orchestrator import main as orchestrator_main
from shiprail.devstack.prometheus import PrometheusServer


async def test_every_part_of_the_orchestrator_benchmark_runs(
    client: Client, worker: Worker, prometheus: PrometheusServer
) -> None:
    stack = Stack(client, prometheus.url, worker_pid=os.getpid())
    latency_ms = 5.0
    # The parts use services of their own, so they can run at once.
    step, rollback, history, concurrent = await asyncio.gather(
        step_overhead(stack, rollouts=1, steps=3),
        rollback_latency(stack, repetitions=2, latency_ms=latency_ms),
        history_size(stack, services=3, steps=2),
        scale(stack, 2),
    )

    assert step["transitions"] == 2
    assert 0 < step["median_ms"] <= step["max_ms"]

    assert (rollback["runs"], rollback["services"], rollback["floor_ms"]) == (2, 20, 4 * latency_ms)
    # Consumers first: a wave's restores leave only once the wave before has been answered,
    # so each wave lands at least one actuator latency after the one before it.
    landed = rollback["wave_done_median_ms"]
    assert landed[0] >= latency_ms
    assert all(later - earlier >= latency_ms for earlier, later in itertools.pairwise(landed))
    assert rollback["median_ms"] == statistics.median(rollback["latencies_ms"])
    # Each run is split at its own first restore: it arrived after that run's failing verdict,
    # and the four waves from there took at least four actuator latencies.
    for before, total in zip(rollback["to_first_restore_ms"], rollback["latencies_ms"], strict=True):
        assert 0 < before <= total - 4 * latency_ms
    assert rollback["to_first_restore_median_ms"] == statistics.median(rollback["to_first_restore_ms"])
    assert rollback["per_wave_median_ms"] >= latency_ms
    # Temporal's own round trip is measured on the same server, by a worker of its own.
    assert rollback["temporal_round_trip_median_ms"] > 0

    # Read from the real history: every service-step writes at least its actuation's and its
    # bake's scheduled, started and completed events.
    assert history["events_per_service_step"] >= 6
    assert 0 < history["history_bytes"] < history["temporal_limits"]["bytes"]

    assert concurrent["failures"] == 0, concurrent["failure_examples"]
    # Counted from the histories: each rollout takes at least one workflow task per step of
    # each of its four dependency levels.
    assert concurrent["workflow_tasks"] >= 2 * 4 * 5
    assert concurrent["worker_peak_rss_mb"] > 0


def _bench_processes() -> list[str]:
    """Command lines of running processes whose state lives in a benchmark's folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if "shiprail-bench-" in text:
            found.append(text)
    return found


def test_a_missing_prometheus_exits_3_and_stops_what_it_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The dev server starts first; Prometheus is then not found: the run must say so and
    # leave no dev server behind.
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        orchestrator_main(["--parts", "step", "--step-rollouts", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 3
    assert "the `prometheus` binary was not found on PATH" in err and "Traceback" not in err
    assert _bench_processes() == []


async def test_the_train_part_measures_a_departure(
    client: Client, worker: Worker, prometheus: PrometheusServer
) -> None:
    from bench.orchestrator import train_departures

    result = await train_departures(
        Stack(client, prometheus.url, worker_pid=os.getpid()), departures=1, cars=3
    )
    # The first actuation comes after the departure was scheduled, and within a few seconds.
    assert 0 < result["overhead_ms"][0] < 10_000
    # A departure writes at least a child start and completion for each car.
    assert result["departure_events_per_car"] >= 2
    assert result["departure_events"] == round(result["departure_events_per_car"] * 3)


async def test_the_actuator_part_measures_each_kind_alike(
    client: Client, worker: Worker, prometheus: PrometheusServer
) -> None:
    from bench.orchestrator import actuator_comparison
    from shiprail.demo.actuator import ActuatorServer

    actuator = ActuatorServer().start()
    try:
        for name in ["http-s-0", *(f"http-c{w}-0" for w in range(4))]:
            actuator.store.add(name, "1.0")
        stack = Stack(client, prometheus.url, worker_pid=os.getpid())
        result = await actuator_comparison(stack, {"http": [{"type": "http", "url": actuator.url}] * 4}, 1)
    finally:
        actuator.stop()
    http = result["http"]
    assert http["transitions"] == 3  # four steps, three hand-overs
    assert 0 < http["step_overhead_median_ms"] <= http["step_overhead_p99_ms"]
    # The last restore comes after the failing verdict, and every service was restored.
    assert http["rollbacks_ms"][0] > 0
    assert all(actuator.store.exposures[f"http-c{w}-0"].canary_version is None for w in range(4))
