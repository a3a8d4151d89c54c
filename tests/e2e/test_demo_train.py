"""`shiprail demo --scenario train` as a user runs it: the real stack, the demo fleet, a
train that departs every 30 s with the demo plan as two dependent cars."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shiprail.devstack.ports import free_port

DEMO_PLAN = Path(__file__).resolve().parents[2] / "examples" / "demo-plan.yaml"

pytestmark = pytest.mark.e2e


def test_the_train_demo_departs_both_cars_in_order(tmp_path: Path) -> None:
    # The demo plan names the demo's fixed ports; free ones keep parallel workers apart.
    plan = tmp_path / "demo-plan.yaml"
    text = DEMO_PLAN.read_text().replace("127.0.0.1:8790", f"127.0.0.1:{free_port()}")
    plan.write_text(text.replace("127.0.0.1:9190", f"127.0.0.1:{free_port()}"))
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shiprail",
            "demo",
            "--scenario",
            "train",
            "--exit",
            "--plan",
            str(plan),
            "--port",
            str(free_port()),
            "--ui-port",
            str(free_port()),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "/schedules/train-demo-train" in output
    assert "boarded demo-shop-consumers (checkout, frontend) after demo-shop-providers" in output
    assert "departure ended succeeded: all 2 cars succeeded" in output
    assert output.index("demo-shop-providers:") < output.index("demo-shop-consumers:")
    assert "Traceback" not in output
