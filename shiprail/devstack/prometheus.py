"""The real Prometheus server, scraping given targets every second, for `demo` and tests.

Targets live in a file_sd file so they can change while Prometheus runs (a test adds its
exporter, the demo adds its fleet) without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import requests

from shiprail.devstack.ports import free_port, port_in_use
from shiprail.devstack.process import ServerProcess
from shiprail.errors import Unreachable

_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: shiprail
    file_sd_configs:
      - files: ["{targets}"]
        refresh_interval: 1s
"""


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    raise Unreachable(
        "the `prometheus` binary was not found on PATH",
        hint="install it: `sudo apt-get install prometheus` (Debian/Ubuntu), `brew install prometheus`,"
        " or run `make system`",
    )


class PrometheusServer:
    def __init__(self, state_dir: Path, *, port: int | None = None, ip: str = "127.0.0.1") -> None:
        self.state_dir = state_dir
        self.ip = ip
        self.port = port or free_port(ip)
        self._process: ServerProcess | None = None
        self._targets: dict[str, dict[str, str]] = {}

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    @property
    def _targets_file(self) -> Path:
        return self.state_dir / "targets.json"

    def start(self, targets: Iterable[str] = (), timeout: float = 30.0) -> None:
        if port_in_use(self.port, self.ip):
            raise Unreachable(f"port {self.port} (Prometheus) is already in use on {self.ip}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_targets({t: {} for t in targets})
        config = self.state_dir / "prometheus.yml"
        config.write_text(_CONFIG.format(targets=self._targets_file))
        argv = [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.state_dir / 'data'}",
            f"--web.listen-address={self.ip}:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        self._process = ServerProcess("prometheus", argv, self.state_dir / "prometheus.log")
        self._process.start(self._ready, timeout)

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _write_targets(self, targets: dict[str, dict[str, str]]) -> None:
        self._targets = dict(targets)
        groups = [{"targets": [t], "labels": labels} for t, labels in self._targets.items()]
        tmp = self._targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, self._targets_file)

    def add_targets(self, targets: Iterable[str], labels: dict[str, str] | None = None) -> None:
        """Scrape more targets; returns once Prometheus has reloaded its configuration."""
        merged = dict(self._targets)
        merged.update({t: dict(labels or {}) for t in targets})
        self._write_targets(merged)
        requests.post(f"{self.url}/-/reload", timeout=10).raise_for_status()

    def wait_for_targets_up(self, targets: Iterable[str], timeout: float = 30.0) -> None:
        """Block until every target has been scraped successfully at least once."""
        wanted = set(targets)
        deadline = time.monotonic() + timeout
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            data = requests.get(f"{self.url}/api/v1/targets", timeout=5).json()["data"]
            health = {t["scrapeUrl"].split("//")[1].split("/")[0]: t["health"] for t in data["activeTargets"]}
            if all(health.get(t) == "up" for t in wanted):
                return
            time.sleep(0.2)
        missing = sorted(t for t in wanted if health.get(t) != "up")
        raise Unreachable(f"Prometheus does not scrape {', '.join(missing)} successfully (health: {health})")

    def stop(self) -> None:
        if self._process:
            self._process.stop()
            self._process = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
