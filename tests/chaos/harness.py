"""Chaos: many rollouts on a shared fleet while workers are SIGKILLed and the server restarts.

`run` starts its own Temporal dev server (SQLite on disk, so it can be stopped and started
again), two `shiprail worker` processes on one task queue, and the demo router. It starts
`rollouts` rollouts of two dependent services each, drawn from a small pool so service
locks contend; about a third carry a gate that fails at 50 % and must roll back. Beside them
it departs `departures` release trains of three cars on the same pool (two succeed, one
depending on the other; the third rolls back). While they run it kills a random worker
(SIGKILL, then a new one) `kills` times and stops and starts the server `restarts` times.
Then it checks, from the router's own log and the workflows:

* every rollout, train car and departure reached a terminal phase within the deadline
  (else it is *lost*), and each departure recorded its cars' outcomes as they ended;
* each ended as planned, and each service it touched ended where that says: at 100 % of the
  new version when it succeeded, exactly at its recorded starting exposure when it rolled
  back (else a *wrong end state*);
* no idempotency key was applied twice (a *double apply*);
* no service was driven by two rollouts at once (from the `rollout_id` of each change);
* every rollout's history, its lock workflows', and each departure's and train's, replays
  against today's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from shiprail import train_client
from shiprail.client import connect
from shiprail.demo.actuator import ActuatorServer, Call
from shiprail.devstack.ports import free_port
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.plan import RolloutPlan, parse_plan
from shiprail.plan.loader import parse_train
from shiprail.status import Phase, RolloutStatus
from shiprail.train_status import RUNNING, DepartureRecord
from shiprail.workflows.train import train_workflow_id
from tests.helpers import plan_document
from tests.replay.history import fetch, replay
from tests.workflow.helpers import start

FAILS_AT_HALF = {"type": "threshold", "query": "vector({{weight}})", "max": 20, "inconclusive_limit": 0}


@dataclass
class Report:
    rollouts: int
    kills: int = 0
    restarts: int = 0
    lost: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    double_applies: list[str] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    replay_failures: list[str] = field(default_factory=list)
    departures: int = 0
    cars: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"rollouts {self.rollouts}, worker kills {self.kills}, server restarts {self.restarts},"
            f" lost {len(self.lost)}, wrong end states {len(self.wrong)},"
            f" double applies {len(self.double_applies)}, overlaps {len(self.overlaps)},"
            f" replay failures {len(self.replay_failures)},"
            f" train departures {self.departures} ({self.cars} cars) ({self.seconds:.0f} s)"
        )

    @property
    def clean(self) -> bool:
        return not (self.lost or self.wrong or self.double_applies or self.overlaps or self.replay_failures)


@dataclass
class _Planned:
    rollout_id: str
    services: list[str]
    version: str
    doomed: bool
    handle: WorkflowHandle[Any, RolloutStatus] | None = None
    result: RolloutStatus | None = None


class _Workers:
    """Two (or more) `shiprail worker` processes on the default task queue."""

    def __init__(self, address: str, count: int, logs: Path) -> None:
        self.argv = [sys.executable, "-m", "shiprail", "worker", "--address", address]
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = [self._spawn(i) for i in range(count)]

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{index}.log").open("ab")
        return subprocess.Popen(self.argv, stdout=log, stderr=log)

    def tend(self) -> None:
        """Start again a worker that has exited, as a supervisor would: one started while the
        server is down gives up (exit 3) rather than wait."""
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.procs[index] = self._spawn(index)

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.procs[index] = self._spawn(index)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _plan(
    name: str, services: list[str], version: str, doomed: bool, prometheus_url: str, actuator_url: str
) -> RolloutPlan:
    """Services in a chain, each depending on the one before; a doomed plan's last service
    carries the gate that fails at 50 %."""
    entries: list[dict[str, Any]] = []
    for index, service in enumerate(services):
        last = index == len(services) - 1
        entries.append(
            {
                "name": service,
                "version": version,
                "actuator": {"type": "http", "url": actuator_url},
                **({"depends_on": [services[index - 1]]} if index else {}),
                **({"gates": ["half"]} if doomed and last else {}),
            }
        )
    document = plan_document(
        actuator_url,
        entries,
        metadata={"name": name},
        prometheus={"url": prometheus_url, "timeout": "5s"},
        defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s", "gates": []},
        gates={"half": FAILS_AT_HALF},
    )
    return parse_plan(yaml.safe_dump(document))


def _plans(
    count: int, pool: int, prometheus_url: str, actuator_url: str, rng: random.Random
) -> list[tuple[_Planned, RolloutPlan]]:
    out = []
    for i in range(count):
        services = rng.sample([f"svc-{k}" for k in range(pool)], 2)
        doomed = rng.random() < 0.35
        version = f"2.{i}"
        plan = _plan(f"chaos-{i}", services, version, doomed, prometheus_url, actuator_url)
        rollout_id = f"chaos-{i:03d}-{rng.getrandbits(24):06x}"
        out.append((_Planned(rollout_id, services, version, doomed), plan))
    return out


@dataclass
class _Departure:
    """A train triggered by hand with three cars: `first` (two services), `second`
    (depending on `first`) and `doomed`, which rolls back while the others go on."""

    train: str
    cars: dict[str, _Planned]
    handle: WorkflowHandle[Any, Any] | None = None
    record: DepartureRecord | None = None


async def _depart(
    client: Client, index: int, pool: int, prometheus_url: str, actuator_url: str, rng: random.Random
) -> _Departure:
    name = f"chaos-train-{index}-{rng.getrandbits(24):06x}"
    document = {
        "apiVersion": "shiprail/v1",
        "kind": "ReleaseTrain",
        "metadata": {"name": name},
        # A cadence that will not come round during the run: the departure is the trigger's.
        "spec": {"schedule": {"cron": ["0 0 1 1 *"]}, "parallel": True, "on_failure": "continue"},
    }
    await train_client.create_train(client, parse_train(yaml.safe_dump(document)), "chaos")
    services = rng.sample([f"svc-{k}" for k in range(pool)], 5)
    layout = {"first": (services[:2], False, []), "second": (services[2:3], False, ["first"])}
    layout["doomed"] = (services[3:], True, [])
    cars: dict[str, _Planned] = {}
    for car, (chain, doomed, after) in layout.items():
        version = f"3.{index}"
        plan = _plan(f"{name}-{car}", chain, version, doomed, prometheus_url, actuator_url)
        await train_client.board(client, name, plan, [f"{name}-{a}" for a in after], "chaos")
        cars[plan.metadata.name] = _Planned("", chain, version, doomed)
    await train_client.trigger(client, name, "chaos")
    return _Departure(name, cars)


async def _wait_departed(client: Client, departure: _Departure, deadline: float) -> None:
    """The departure's record once it has ended, then each car's rollout's result."""
    while time.monotonic() < deadline and departure.record is None:
        try:
            state = await train_client.manifest(client, departure.train)
            ended = [d for d in state.departures if d.outcome != RUNNING and d.cars]
            departure.record = ended[0] if ended else None
        except Exception:  # the server is restarting, or the train not yet answering
            pass
        if departure.record is None:
            await asyncio.sleep(0.5)
    if departure.record is None:
        return
    departure.handle = client.get_workflow_handle(departure.record.id)
    for record in departure.record.cars:
        planned = departure.cars[record.car]
        if record.rollout_id:
            planned.rollout_id = record.rollout_id
            planned.handle = client.get_workflow_handle(record.rollout_id, result_type=RolloutStatus)
            await _wait_terminal(client, planned, deadline)


async def _where_departure_stuck(client: Client, departure: _Departure) -> str:
    """A lost departure's train and what it and its schedule say, when they still answer."""
    where = f"departure of train {departure.train}: not ended"
    try:
        state = await asyncio.wait_for(train_client.manifest(client, departure.train), 10)
        records = [
            f"{d.id} {d.outcome} [{', '.join(f'{c.car} {c.phase}' for c in d.cars)}]"
            for d in state.departures
        ]
        where += f"; the train knows {records or 'no departure'}"
        described = await asyncio.wait_for(
            client.get_schedule_handle(train_client.schedule_id(departure.train)).describe(), 10
        )
        actions = [a.action.workflow_id for a in described.info.recent_actions]
        running = [a.workflow_id for a in described.info.running_actions]
        where += f"; its schedule took actions {actions}, running {running}"
    except Exception as exc:  # whatever keeps it from answering is the finding
        where += f"; no answer ({type(exc).__name__}: {exc})"
    return where


def _check_departure(report: Report, departure: _Departure, stuck: str = "") -> None:
    """What the departure recorded of its cars matches how their rollouts ended."""
    if departure.record is None:
        report.lost.append(stuck or f"departure of train {departure.train}: not ended")
        return
    for record in departure.record.cars:
        planned = departure.cars[record.car]
        if planned.result is None:
            report.lost.append(f"train {departure.train} car {record.car}: {record.phase}, no result")
        elif record.phase != planned.result.phase.value:
            report.wrong.append(
                f"train {departure.train} car {record.car}: recorded {record.phase},"
                f" its rollout ended {planned.result.phase.value}"
            )


async def _wait_terminal(client: Client, planned: _Planned, deadline: float) -> None:
    assert planned.handle is not None
    while time.monotonic() < deadline:
        try:
            planned.result = await asyncio.wait_for(
                planned.handle.result(), max(deadline - time.monotonic(), 0.1)
            )
            return
        except (TimeoutError, RPCError, RuntimeError):
            await asyncio.sleep(0.5)  # the server is restarting; ask again


async def _chaos(
    report: Report,
    kills: int,
    restarts: int,
    workers: _Workers,
    server: TemporalDevServer,
    done: asyncio.Event,
    rng: random.Random,
) -> None:
    """Kills spread over the run, with a server restart after every kills/restarts of them."""
    every = max(kills // max(restarts, 1), 1)
    while not done.is_set() and (report.kills < kills or report.restarts < restarts):
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), rng.uniform(0.4, 1.6))
            return
        if report.kills < kills:
            await asyncio.to_thread(workers.kill, rng.randrange(len(workers.procs)))
            report.kills += 1
        if report.restarts < restarts and (report.kills % every == 0 or report.kills >= kills):
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            await asyncio.to_thread(server.start)
            report.restarts += 1


def _restartable_port(rng: random.Random) -> int:
    """A free port below the kernel's ephemeral range: the server gives it up at each restart,
    and a port the kernel hands out (`free_port`) could go to another test in the gap."""
    import socket

    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return free_port()


async def _where_stuck(p: _Planned) -> str:
    """A lost rollout's id and, when it still answers, where it stands."""
    from shiprail.workflows.rollout import RolloutWorkflow

    assert p.handle is not None
    try:
        status = await asyncio.wait_for(p.handle.query(RolloutWorkflow.status), 10)
    except Exception as exc:  # whatever keeps it from answering is the finding
        return f"{p.rollout_id}: no answer ({type(exc).__name__})"
    states = ", ".join(f"{s.name} {s.state.value} {s.weight:g}%" for s in status.services)
    holder = ""
    if status.lock_holder:
        try:
            described = await p.handle._client.get_workflow_handle(status.lock_holder).describe()
            holder = (
                f", waiting for {status.lock_holder} ({described.status.name if described.status else '?'})"
            )
        except RPCError as exc:
            holder = f", waiting for {status.lock_holder} ({exc.status.name})"
    locks = [e.message for e in await p.handle.query(RolloutWorkflow.audit) if e.kind == "lock"][-2:]
    return f"{p.rollout_id}: {status.phase.value} ({states}){holder}; {locks}"


async def _tend(workers: _Workers, done: asyncio.Event) -> None:
    while not done.is_set():
        workers.tend()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), 1.0)


def _check_router(report: Report, planned: list[_Planned], puts: list[Call]) -> None:
    by_key: dict[str, int] = defaultdict(int)
    for call in puts:
        if call.idempotency_key:
            by_key[call.idempotency_key] += 1
    report.double_applies += [k for k, n in by_key.items() if n > 1]

    by_service: dict[str, list[Call]] = defaultdict(list)
    for call in sorted(puts, key=lambda c: c.time):
        by_service[call.service].append(call)
    for service, calls in by_service.items():
        finished: set[str] = set()
        current: str | None = None
        for call in calls:
            if call.rollout_id != current:
                if call.rollout_id in finished:
                    report.overlaps.append(f"{service}: {call.rollout_id} again after {current}")
                if current is not None:
                    finished.add(current)
                current = call.rollout_id

    for p in planned:
        if p.result is None:
            continue
        expected = Phase.ROLLED_BACK if p.doomed else Phase.SUCCEEDED
        if p.result.phase is not expected:
            report.wrong.append(
                f"{p.rollout_id}: {p.result.phase.value}, expected {expected.value} ({p.result.reason})"
            )
            continue
        for service in p.services:
            mine = [c for c in by_service.get(service, []) if c.rollout_id == p.rollout_id]
            if not mine:
                if not p.doomed:
                    report.wrong.append(f"{p.rollout_id}: {service} never changed")
                continue
            end = mine[-1].after
            status = next(s for s in p.result.services if s.name == service)
            if p.doomed:
                original = status.original
                if (
                    original is None
                    or end is None
                    or (end.stable_version, end.canary_version, end.weight)
                    != (
                        original.stable_version,
                        original.canary_version,
                        original.weight,
                    )
                ):
                    report.wrong.append(f"{p.rollout_id}: {service} left at {end}, started at {original}")
            elif end is None or not (
                end.stable_version == p.version or (end.canary_version == p.version and end.weight == 100)
            ):
                report.wrong.append(f"{p.rollout_id}: {service} left at {end}, not at 100 % of {p.version}")


async def run(
    workdir: Path,
    prometheus_url: str,
    *,
    rollouts: int,
    kills: int,
    restarts: int,
    departures: int = 1,
    pool: int = 6,
    seed: int = 1,
) -> Report:
    rng = random.Random(seed)
    # About six rollouts a service: enough contention for the locks, not a queue so long
    # that the bound below measures waiting rather than recovery.
    pool = pool or max(6, rollouts // 3)
    report = Report(rollouts=rollouts)
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    server = TemporalDevServer(workdir / "temporal", port=_restartable_port(rng), ui_port=None)
    server.start()
    actuator = ActuatorServer().start()
    workers: _Workers | None = None
    try:
        for k in range(pool):
            actuator.store.add(f"svc-{k}", "1.0")
        workers = _Workers(server.address, 2, workdir)
        client = await connect(server.address)
        planned = _plans(rollouts, pool, prometheus_url, actuator.url, rng)
        for p, plan in planned:
            p.handle = await start(client, plan, p.rollout_id)
        trains = [
            await _depart(client, i, pool, prometheus_url, actuator.url, rng) for i in range(departures)
        ]
        report.departures, report.cars = len(trains), sum(len(t.cars) for t in trains)
        done = asyncio.Event()
        chaos = asyncio.create_task(_chaos(report, kills, restarts, workers, server, done, rng))
        # Each service's rollouts run one after another; a kill costs a bake its heartbeat
        # timeout (10 s) and a restart the server's start.
        deadline = time.monotonic() + 180 + 10 * rollouts
        tending = asyncio.create_task(_tend(workers, done))
        await asyncio.gather(
            *(_wait_terminal(client, p, deadline) for p, _ in planned),
            *(_wait_departed(client, t, deadline) for t in trains),
        )
        done.set()
        await tending
        await chaos
        report.lost = [await _where_stuck(p) for p, _ in planned if p.result is None]
        for train in trains:
            stuck = await _where_departure_stuck(client, train) if train.record is None else ""
            _check_departure(report, train, stuck)
        everything = [p for p, _ in planned] + [c for t in trains for c in t.cars.values() if c.handle]
        _check_router(report, everything, actuator.store.puts())
        for train in trains:
            ended = [train.handle] if train.handle else []
            for handle in [*ended, client.get_workflow_handle(train_workflow_id(train.train))]:
                try:
                    await replay([await handle.fetch_history()])
                except Exception as exc:  # any divergence, whatever the SDK calls it
                    report.replay_failures.append(f"{handle.id}: {type(exc).__name__}: {exc}")
        seen: set[str] = set()
        for p in everything:
            if p.result is None or p.handle is None:
                continue
            histories = [
                h
                for h in await fetch(client, p.handle)
                if h.workflow_id not in seen or h.workflow_id == p.rollout_id
            ]
            seen |= {h.workflow_id for h in histories}
            try:
                await replay(histories)
            except Exception as exc:  # any divergence, whatever the SDK calls it
                report.replay_failures.append(f"{p.rollout_id}: {type(exc).__name__}: {exc}")
    finally:
        if workers:
            workers.stop()
        actuator.stop()
        server.stop()
    report.seconds = time.monotonic() - began
    return report
