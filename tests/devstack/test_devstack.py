"""`shiprail dev` as a user runs it, and the Prometheus launcher the demo and tests use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, start_http_server

from shiprail.devstack.ports import free_port, port_in_use
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.devstack.temporal import temporal_binary

_SHIPRAIL = (sys.executable, "-m", "shiprail")


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _temporal(*args: str, address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [temporal_binary(), *args, "--address", address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class _Dev:
    """`shiprail dev` in a child process with its output in a file."""

    def __init__(
        self, state: Path, port: int, ui_port: int, log: Path, *, sigint_ignored: bool = False
    ) -> None:
        self.address = f"127.0.0.1:{port}"
        self.ui = f"http://127.0.0.1:{ui_port}"
        self.log = log
        with log.open("w") as sink:
            self.process = subprocess.Popen(
                [
                    *_SHIPRAIL,
                    "dev",
                    "--state-dir",
                    str(state),
                    "--port",
                    str(port),
                    "--ui-port",
                    str(ui_port),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "200"},
                preexec_fn=_as_a_background_job if sigint_ignored else _as_a_terminal_job,
            )

    def wait_ready(self) -> None:
        _until(lambda: "Press Ctrl-C" in self.log.read_text() or self.process.poll() is not None, 90, "dev")
        assert self.process.poll() is None, self.log.read_text()

    def interrupt(self, sig: signal.Signals = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=_STOP_WITHIN)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
            masks = "\n".join(line for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
            self.process.send_signal(signal.SIGUSR1)  # `dev` prints where every thread waits
            _until(lambda: "thread 0x" in self.log.read_text().lower(), 10, "a stack dump")
            raise AssertionError(
                f"dev still running {_STOP_WITHIN} s after {sig.name}:\n{masks}\n{self.log.read_text()}"
            ) from None


# The worker's shutdown waits for its activities and long polls. In one loaded full run a
# stop took over 30 s with `dev` idle in its event loop (a poll still open), so the bound
# is generous; a stop that never ends still fails.
_STOP_WITHIN = 90


def _as_a_terminal_job() -> None:
    """What `shiprail dev` in a terminal starts with, whatever the test runner's own state."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _as_a_background_job() -> None:
    """What `shiprail dev &` inherits from a script: SIGINT ignored; and from a parent that
    forked while it had them blocked, SIGINT and SIGTERM blocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Callable[..., _Dev]]:
    started: list[_Dev] = []
    port, ui_port = free_port(), free_port()

    def start(sigint_ignored: bool = False) -> _Dev:
        log = tmp_path / f"dev-{len(started)}.log"
        started.append(_Dev(tmp_path / "state", port, ui_port, log, sigint_ignored=sigint_ignored))
        started[-1].wait_ready()
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            # SIGTERM first (it stops `dev` whether or not SIGINT is ignored): a SIGKILL
            # would orphan the dev server it started.
            try:
                running.interrupt(signal.SIGTERM)
            except AssertionError:
                _kill_with_children(running.process)


def _kill_with_children(process: subprocess.Popen[bytes]) -> None:
    """A `dev` that would not stop: kill it and the process groups of what it started."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)
    process.kill()
    process.wait()


def test_dev_serves_temporal_ui_and_worker_and_stops_cleanly_on_ctrl_c_or_sigterm(
    dev: Callable[..., _Dev],
) -> None:
    first = dev()
    listed = _temporal("workflow", "list", address=first.address)
    assert listed.returncode == 0, listed.stderr
    assert requests.get(first.ui, timeout=10).status_code == 200
    attributes = _temporal("operator", "search-attribute", "list", address=first.address).stdout
    for name in ("ShiprailPlan", "ShiprailPhase", "ShiprailServices", "ShiprailTrain"):
        assert name in attributes

    def worker_polls() -> bool:
        queue = _temporal("task-queue", "describe", "--task-queue", "shiprail", address=first.address)
        return queue.returncode == 0 and "@" in queue.stdout  # a poller identity is pid@host

    _until(worker_polls, 30, "a worker polling task queue shiprail")
    started = _temporal(
        "workflow",
        "start",
        "--type",
        "Nothing",
        "--task-queue",
        "nobody",
        "--workflow-id",
        "kept",
        address=first.address,
    )
    assert started.returncode == 0, started.stderr

    assert first.interrupt() == 0, first.log.read_text()
    assert "stopping" in first.log.read_text() and "Traceback" not in first.log.read_text()
    assert not port_in_use(int(first.address.rsplit(":", 1)[1])), "the dev server outlived Ctrl-C"

    second = dev()  # same state directory: what the first one knew is still there
    described = _temporal("workflow", "describe", "--workflow-id", "kept", address=second.address)
    assert described.returncode == 0, described.stderr
    # `kill` (a service manager's stop) tidies up like Ctrl-C does.
    assert second.interrupt(signal.SIGTERM) == 0, second.log.read_text()
    assert not port_in_use(int(second.address.rsplit(":", 1)[1])), "the dev server outlived SIGTERM"


def test_dev_started_as_a_scripts_background_job_stops_on_sigterm(dev: Callable[..., _Dev]) -> None:
    # asyncio turns only a default-handled SIGINT into a cancellation; SIGTERM must not
    # depend on it, or the worker's shutdown can wedge and orphan the dev server. Nor on
    # the signal mask it was handed, or only SIGKILL would stop it.
    background = dev(sigint_ignored=True)
    assert background.interrupt(signal.SIGTERM) == 0, background.log.read_text()
    assert "stopping" in background.log.read_text() and "Traceback" not in background.log.read_text()
    assert not port_in_use(int(background.address.rsplit(":", 1)[1])), "the dev server outlived SIGTERM"


def test_dev_on_a_busy_port_exits_3(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "shiprail", "dev", "--state-dir", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 3
    assert f"port {port} (gRPC) is already in use" in run.stderr and "Traceback" not in run.stderr


def test_dev_without_the_temporal_binary_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "temporal"
    run = subprocess.run(
        [sys.executable, "-m", "shiprail", "dev", "--state-dir", str(tmp_path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SHIPRAIL_TEMPORAL_BIN": str(missing)},
    )
    assert run.returncode == 3
    assert f"not found at {missing}" in run.stderr and "Traceback" not in run.stderr


def test_prometheus_launcher_scrapes_every_second_and_stops(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    hits = Counter("launcher_test_hits", "hits", registry=registry)
    hits.inc(41)
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    prometheus = PrometheusServer(tmp_path / "prometheus")
    try:
        prometheus.start([f"127.0.0.1:{exporter_port}"])
        config = requests.get(f"{prometheus.url}/api/v1/status/config", timeout=5).json()["data"]["yaml"]
        assert "scrape_interval: 1s" in config
        prometheus.wait_for_targets_up([f"127.0.0.1:{exporter_port}"])
        hits.inc()

        def sees_42() -> bool:
            answer = requests.get(
                f"{prometheus.url}/api/v1/query", params={"query": "launcher_test_hits_total"}
            )
            result = answer.json()["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == 42

        _until(sees_42, 15, "the new sample to be scraped")
        assert (tmp_path / "prometheus" / "data").is_dir()
    finally:
        prometheus.stop()
        server.shutdown()
        thread.join(5)
    assert not port_in_use(prometheus.port)
