"""`shiprail train …`, `windows show`, `override` and `start --override-window` as a user
runs them, in child processes against the session's dev server and worker."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from shiprail.demo.actuator import ActuatorServer
from tests.cli.conftest import Shiprail, write_plan

pytestmark = pytest.mark.usefixtures("worker")


def write_train(directory: Path, name: str, **spec: object) -> Path:
    spec.setdefault("schedule", {"every": "1h", "timezone": "Europe/Berlin"})
    path = directory / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {"apiVersion": "shiprail/v1", "kind": "ReleaseTrain", "metadata": {"name": name}, "spec": spec}
        )
    )
    return path


async def test_train_commands_end_to_end(
    shiprail: Shiprail, actuator: ActuatorServer, tmp_path: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    # A yearly departure far from any run of this test: no cut-off passes while it runs.
    train = write_train(
        tmp_path, name, cutoff="10m", schedule={"cron": "0 3 1 1 *", "timezone": "Europe/Berlin"}
    )
    run = await shiprail("train", "create", str(train))
    assert run.code == 0 and f"created release train {name}" in run.out, run.text
    assert "updated" in (await shiprail("train", "create", str(train))).out
    service = f"svc-{uuid.uuid4().hex[:6]}"
    actuator.store.add(service, "1.0")
    plan = write_plan(tmp_path, f"car-{uuid.uuid4().hex[:6]}", actuator.url, [{"name": service}])
    run = await shiprail("train", "board", name, str(plan))
    assert run.code == 0 and "boarded car-" in run.out and "(Europe/Berlin)" in run.out, run.text
    run = await shiprail("train", "board", name, str(plan))
    assert run.code == 2 and "is already boarded" in run.err
    run = await shiprail("train", "board", name, str(plan), "--depends-on", "ghost")
    assert run.code == 2 and "refused" in run.err
    shown = json.loads((await shiprail("train", "show", name, "--json")).out)
    assert set(shown) >= {"name", "paused", "note", "timezone", "next", "boarded", "departures"}
    assert [c["car"] for c in shown["boarded"]] == [plan.stem]
    departs = datetime.fromisoformat(shown["next"][0]["departs"])
    assert departs.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert datetime.fromisoformat(shown["next"][0]["cutoff"]) == departs - timedelta(minutes=10)
    assert (await shiprail("train", "pause", name)).code == 2  # needs --reason
    assert (await shiprail("train", "pause", name, "--reason", "incident")).code == 0
    assert json.loads((await shiprail("train", "show", name, "--json")).out)["paused"] is True
    run = await shiprail("train", "skip", name, "--next", "--reason", "offsite")
    assert run.code == 0 and "skipping the departure" in run.out
    assert "offsite" in (await shiprail("train", "show", name)).out
    assert (await shiprail("train", "skip", name, "--reason", "x")).code == 2
    assert (await shiprail("train", "resume", name)).code == 0
    listed = json.loads((await shiprail("train", "list", "--json")).out)
    assert name in {row["name"] for row in listed}
    run = await shiprail("train", "unboard", name, plan.stem)
    assert run.code == 0 and "unboarded" in run.out
    run = await shiprail("train", "delete", name)
    assert run.code == 0 and "0 boarded cars dropped" in run.out
    run = await shiprail("train", "show", name)
    assert run.code == 2 and f"no release train {name!r}" in run.err


async def test_a_bad_train_file_and_an_unknown_train_exit_2(shiprail: Shiprail, tmp_path: Path) -> None:
    bad = write_train(tmp_path, "bad", schedule={"cron": "0 10 * * tux"}, overlap="sometimes")
    for args in (("plan", "check", str(bad)), ("train", "create", str(bad))):
        run = await shiprail(*args)
        assert run.code == 2, run.text
        assert f"{bad}:5: spec.schedule.cron" in run.err or f"{bad}:" in run.err
        assert "overlap" in run.err and "Traceback" not in run.text
    run = await shiprail("train", "board", "nowhere", str(bad))
    assert run.code == 2
    assert (await shiprail("plan", "schema", "--kind", "ReleaseTrain")).code == 0
    assert (await shiprail("plan", "schema", "--kind", "Nope")).code == 2


async def test_windows_show_covers_the_requested_days(shiprail: Shiprail, tmp_path: Path) -> None:
    train = write_train(
        tmp_path,
        "holiday",
        windows={"timezone": "Europe/Berlin", "holidays": {"country": "DE", "subdiv": "BE"}},
    )
    run = await shiprail("windows", "show", str(train), "--from", "2026-12-24", "--days", "3", "--json")
    spans = json.loads(run.out)
    assert (
        spans[0]["start"] == "2026-12-24T00:00:00+01:00" and spans[-1]["end"] == "2026-12-27T00:00:00+01:00"
    )
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(spans))
    closed = [s for s in spans if not s["open"]]
    assert [s["reason"] for s in closed] == [
        "Christmas Day (DE-BE holiday)",
        "Second Day of Christmas (DE-BE holiday)",
    ]
    assert [s["open"] for s in spans] == [True, False, False]
    run = await shiprail("windows", "show", str(train), "--from", "2026-12-24", "--days", "3")
    assert "Christmas Day" in run.out and "Thu 2026-12-24" in run.out
    assert (await shiprail("windows", "show", str(train), "--from", "christmas")).code == 2


async def test_start_with_a_window_override_goes_through_a_freeze(
    shiprail: Shiprail, actuator: ActuatorServer, tmp_path: Path, rollout_id: str
) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    actuator.store.add(service, "1.0")
    today = datetime.now(UTC).date()
    plan = write_plan(
        tmp_path,
        "frozen",
        actuator.url,
        [{"name": service}],
        windows={
            "deny": [
                {
                    "from": str(today - timedelta(days=1)),
                    "to": str(today + timedelta(days=1)),
                    "reason": "freeze",
                }
            ]
        },
    )
    assert (await shiprail("start", str(plan), "--override-window")).code == 2  # needs --reason
    run = await shiprail(
        "start", str(plan), "--wait", "--id", rollout_id, "--override-window", "--reason", "INC-1"
    )
    assert run.code == 0, run.text
    audit = (await shiprail("audit", rollout_id)).out
    assert "started with a window override: INC-1" in audit and "[cli-tester]" in audit
