"""`shiprail demo` as a user runs it, on the real stack and the demo fleet: a train that
departs every 30 s with the demo plan as two dependent cars, and a bad release behind the
real HAProxy rolled back to the weights it found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shiprail.devstack.ports import free_port

DEMO_PLAN = Path(__file__).resolve().parents[2] / "examples" / "demo-plan.yaml"

pytestmark = pytest.mark.e2e


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The demo plan names the demo's fixed ports; free ones keep parallel workers apart.
    plan = tmp_path / "demo-plan.yaml"
    text = DEMO_PLAN.read_text().replace("127.0.0.1:8790", f"127.0.0.1:{free_port()}")
    plan.write_text(text.replace("127.0.0.1:9190", f"127.0.0.1:{free_port()}"))
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    command = [sys.executable, "-m", "shiprail", "demo", "--exit", "--plan", str(plan), *args]
    command += [
        "--port",
        str(free_port()),
        "--ui-port",
        str(free_port()),
        "--state-dir",
        str(tmp_path / "state"),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)


def test_the_train_demo_departs_both_cars_in_order(tmp_path: Path) -> None:
    done = demo(tmp_path, "--scenario", "train")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "/schedules/train-demo-train" in output
    assert "boarded demo-shop-consumers (checkout, frontend) after demo-shop-providers" in output
    assert "departure ended succeeded: all 2 cars succeeded" in output
    assert output.index("demo-shop-providers:") < output.index("demo-shop-consumers:")
    assert "Traceback" not in output


def test_a_bad_release_behind_real_haproxy_is_rolled_back_to_the_weights_it_found(tmp_path: Path) -> None:
    done = demo(tmp_path, "--router", "haproxy", "--scenario", "bad-payments")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "HAProxy runtime API at" in output
    assert "rollout ended rolled_back: payments: gate failed" in output
    for name, stable in (
        ("payments", "2.3.0"),
        ("inventory", "3.0.0"),
        ("checkout", "1.8.0"),
        ("frontend", "4.2.0"),
    ):
        assert f"router {name}: stable {stable}\n" in output  # no canary weight left anywhere
    assert "Traceback" not in output
