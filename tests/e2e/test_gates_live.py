"""Every gate type on real Prometheus fed by the demo fleet, through `shiprail gates eval`.

The canary is put on the router by hand (no rollout), the fleet's load runs through it,
and the dry run must reach the verdict each gate exists for: error gates trip on the
erroring canary, latency gates on the slow one, and nothing trips on a good one.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shiprail.devstack.ports import free_port
from shiprail.devstack.prometheus import PrometheusServer
from shiprail.gates import GateContext, PrometheusSource, evaluate
from shiprail.gates.prometheus import SETTLE
from shiprail.plan.models import ThresholdGate
from tests.e2e.conftest import DEMO_PLAN, FleetRig
from tests.helpers import run_cli

RigFactory = Callable[..., FleetRig]

ALL_GATES = """\
apiVersion: shiprail/v1
kind: RolloutPlan
metadata: {name: live-gates}
spec:
  prometheus: {url: PROMETHEUS, timeout: 5s}
  defaults: {steps: [50, 100], bake: 30s, interval: 2s}
  gates:
    error-ratio:
      type: threshold
      query: >-
        sum(increase(http_requests_total{service="{{service}}",version="{{version}}",code=~"5.."}[15s]) or vector(0))
        / sum(increase(http_requests_total{service="{{service}}",version="{{version}}"}[15s]))
      max: 0.05
    burn:
      type: burn_rate
      objective: 0.99
      bad: 'http_requests_total{service="{{service}}",version="{{version}}",code=~"5.."}'
      total: 'http_requests_total{service="{{service}}",version="{{version}}"}'
      windows: [{long: 1m, short: 10s, max_burn: 3}]
    errors:
      type: compare
      bad: 'http_requests_total{service="{{service}}",version="{{version}}",code=~"5.."}'
      total: 'http_requests_total{service="{{service}}",version="{{version}}"}'
      max_increase: 0.5
      min_samples: 10
    p95:
      type: latency
      histogram: 'http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}"}'
      quantile: 0.95
      max: 0.25
      window: 15s
    fast-enough:
      type: latency
      histogram: 'http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}"}'
      faster_than: 0.1
      objective: 0.9
      window: 15s
    median-vs-stable:
      type: compare
      query: >-
        histogram_quantile(0.5, sum by (le) (rate(
        http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}"}[5s])))
      max_increase: 0.2
    slower-than-stable:
      type: compare
      histogram: 'http_request_duration_seconds_bucket{service="{{service}}",version="{{version}}"}'
      max_increase: 0.2
      min_samples: 10
  services:
    - {name: payments, version: 2.4.0, actuator: {type: http, url: ROUTER},
       gates: [error-ratio, burn, errors, p95, fast-enough, median-vs-stable, slower-than-stable]}
    - {name: inventory, version: 3.1.0, actuator: {type: http, url: ROUTER},
       gates: [error-ratio, burn, errors, p95, fast-enough, median-vs-stable, slower-than-stable]}
"""

ERROR_GATES = {"error-ratio", "burn", "errors"}
LATENCY_GATES = {"p95", "fast-enough", "median-vs-stable", "slower-than-stable"}


def _plan(rig: FleetRig, tmp_path: Path) -> Path:
    path = tmp_path / "live-gates.yaml"
    path.write_text(
        ALL_GATES.replace("PROMETHEUS", rig.prometheus.url).replace("ROUTER", rig.fleet.router_url)
    )
    return path


def _canary(rig: FleetRig, service: str, version: str) -> float:
    status, _ = rig.fleet.store.put(
        {"service": service, "version": version, "weight": 50, "rollout_id": "by-hand", "idempotency_key": ""}
    )
    assert status == 200
    return time.time()


def _verdicts(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    plan: Path,
    service: str,
    since: float,
    expected: dict[str, str],
    deadline: float = 90.0,
) -> dict[str, dict[str, object]]:
    """Evaluate until the gates reach the expected verdicts (or time runs out); return the last rows."""
    end = time.monotonic() + deadline
    while True:
        began = f"{max(int(time.time() - since), 2)}s"
        code, out, err = run_cli(
            monkeypatch, capsys, "gates", "eval", str(plan), "--service", service, "--since", began, "--json"
        )
        assert code == 0, err
        rows = {r["gate"]: r for r in json.loads(out)["gates"]}
        if all(rows[g]["verdict"] == v for g, v in expected.items()) or time.monotonic() > end:
            return rows
        time.sleep(1)


def _assert_verdicts(rows: dict[str, dict[str, object]], expected: dict[str, str]) -> None:
    got = {g: rows[g]["verdict"] for g in expected}
    assert got == expected, {g: (rows[g]["verdict"], rows[g]["reason"]) for g in expected}


def test_error_gates_trip_on_an_erroring_canary_and_latency_gates_do_not(
    fleet_rig: RigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = fleet_rig("bad-payments")
    plan = _plan(rig, tmp_path)
    since = _canary(rig, "payments", "2.4.0")
    expected = {**dict.fromkeys(ERROR_GATES, "fail"), "p95": "pass", "fast-enough": "pass"}
    rows = _verdicts(monkeypatch, capsys, plan, "payments", since, expected)
    _assert_verdicts(rows, expected)
    assert re.search(
        r"canary error rate .* p [<=] 0\.0\d+ after [\d,]+ requests", str(rows["errors"]["reason"])
    )
    assert float(rows["error-ratio"]["value"]) > 0.05  # type: ignore[arg-type]


def test_latency_gates_trip_on_a_slow_canary_and_a_good_canary_passes_everything(
    fleet_rig: RigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = fleet_rig("slow-inventory")
    plan = _plan(rig, tmp_path)
    since = _canary(rig, "inventory", "3.1.0")
    _canary(rig, "payments", "2.4.0")  # good in this scenario
    expected = {**dict.fromkeys(LATENCY_GATES, "fail"), **dict.fromkeys(ERROR_GATES, "pass")}
    slow = _verdicts(monkeypatch, capsys, plan, "inventory", since, expected)
    _assert_verdicts(slow, expected)
    assert float(slow["p95"]["value"]) > 0.25  # type: ignore[arg-type]
    assert re.search(
        r"of canary requests slower than [\d.]+ m?s vs baseline [\d.]+% slower than [\d.]+ m?s",
        str(slow["slower-than-stable"]["reason"]),
    )
    all_pass = dict.fromkeys(LATENCY_GATES | ERROR_GATES, "pass")
    _assert_verdicts(_verdicts(monkeypatch, capsys, plan, "payments", since, all_pass, 30), all_pass)


def test_plan_check_with_prometheus_runs_every_gate_of_the_demo_plan(
    fleet_rig: RigFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rig = fleet_rig("good")
    plan = tmp_path / "demo.yaml"
    plan.write_text(DEMO_PLAN.read_text().replace("http://127.0.0.1:8790/exposure", rig.fleet.router_url))
    code, out, err = run_cli(
        monkeypatch, capsys, "plan", "check", str(plan), "--prometheus", rig.prometheus.url, "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["valid"] is True
    rows = report["dry_run"]["gates"]
    assert sorted((r["service"], r["gate"]) for r in rows) == sorted(
        (s, g)
        for s in ("payments", "inventory", "checkout", "frontend")
        for g in ("errors", "slow", "error-ratio", "p95-latency")
    )
    assert all(r["verdict"] in {"pass", "fail", "inconclusive"} and r["reason"] for r in rows)
    code, out, _ = run_cli(
        monkeypatch, capsys, "plan", "check", str(plan), "--prometheus", rig.prometheus.url
    )
    assert code == 0 and "Gates evaluated at" in out and "p95-latency" in out


def test_a_broken_query_is_reported_with_prometheus_message_and_the_gate_name(
    prometheus: PrometheusServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = tmp_path / "broken.yaml"
    plan.write_text(
        ALL_GATES.replace("PROMETHEUS", prometheus.url)
        .replace("ROUTER", "http://127.0.0.1:1/exposure")
        .replace("max: 0.05", "max: 0.05\n      samples: 'sum(rate(http_requests_total[1m]'")
    )
    code, out, err = run_cli(
        monkeypatch, capsys, "gates", "eval", str(plan), "--service", "payments", "--stable-version", "2.3.0"
    )
    assert code == 2
    assert "gate error-ratio on payments (samples)" in err and "parse error" in err, err
    assert "Traceback" not in out + err


def test_gates_eval_exits_3_when_prometheus_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "down.yaml"
    down = f"http://127.0.0.1:{free_port()}"
    plan.write_text(ALL_GATES.replace("PROMETHEUS", down).replace("ROUTER", "http://127.0.0.1:1/exposure"))
    code, _, err = run_cli(monkeypatch, capsys, "gates", "eval", str(plan), "--service", "payments")
    assert code == 3 and f"Prometheus at {down} unreachable" in err
    code, _, err = run_cli(monkeypatch, capsys, "gates", "eval", str(plan), "--service", "nope")
    assert code == 3  # Prometheus is checked first: nothing can be evaluated without it
    code, _, err = run_cli(monkeypatch, capsys, "gates", "eval", str(plan), "--at", "yesterday-ish")
    assert code == 2 and "--at" in err


def test_a_gate_is_judged_as_of_the_settled_instant_where_its_queries_agree(
    prometheus: PrometheusServer,
) -> None:
    # `time()` answers the instant Prometheus evaluated at: every query of the evaluation
    # must be asked at the same instant, a scrape's length behind the wall clock.
    gate = ThresholdGate(type="threshold", query="time()", max=1e12)
    now = datetime.now(UTC)
    ctx = GateContext(
        service="payments",
        version="2.4.0",
        stable_version="2.3.0",
        weight=10,
        step_start=now - timedelta(seconds=30),
        now=now,
        bake=timedelta(seconds=30),
        interval=timedelta(seconds=2),
    )
    source = PrometheusSource(prometheus.url)
    verdict = evaluate("clock", gate, ctx, source, {})
    assert verdict.value == pytest.approx((now - SETTLE).timestamp(), abs=0.002)
