"""A command imports what it needs and no more: `shiprail plan check` in CI, or `status` in
a script's loop, should not pay seconds of imports for the demo fleet or the HTTP stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo-plan.yaml"
HEAVY = ("temporalio.client", "holidays", "requests", "shiprail.cli.demo", "shiprail.cli.train")


def _loaded_after(*args: str) -> dict[str, bool]:
    """Which of HEAVY a fresh process holds after `shiprail ARGS`."""
    script = (
        "import json, sys\n"
        f"sys.argv = ['shiprail', *{list(args)!r}]\n"
        "from shiprail.cli import run\n"
        "code = run()\n"
        f"print(json.dumps({{'code': code, **{{m: m in sys.modules for m in {HEAVY!r}}}}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_plan_check_imports_neither_temporal_nor_the_other_commands() -> None:
    loaded = _loaded_after("plan", "check", str(EXAMPLE))
    assert loaded.pop("code") == 0
    assert not any(loaded.values()), loaded


def test_status_imports_the_client_but_not_the_demo_the_trains_or_the_http_stack() -> None:
    loaded = _loaded_after("status", "--help")
    assert loaded.pop("code") == 0
    assert loaded == {m: m == "temporalio.client" for m in HEAVY}


def test_help_lists_every_command_once_whatever_ran_before_in_the_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(monkeypatch, capsys, "status", "--help")[0] == 0
    code, out, _ = run_cli(monkeypatch, capsys, "--help")
    assert code == 0
    for command in (
        "start",
        "status",
        "audit",
        "dev",
        "worker",
        "demo",
        "codec-server",
        "plan",
        "train",
        "windows",
        "keys",
        "gates",
    ):
        assert len(re.findall(rf"^│ {re.escape(command)} ", out, re.MULTILINE)) == 1, (command, out)
    code, _, err = run_cli(monkeypatch, capsys, "stauts")
    assert code == 2 and "No such command" in err
