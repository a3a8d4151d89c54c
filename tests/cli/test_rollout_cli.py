"""The rollout commands end to end: real console entry point, dev server, worker, actuator."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.ports import free_port
from shiprail.devstack.prometheus import PrometheusServer
from tests.cli.conftest import Shiprail, write_plan
from tests.workflow.helpers import WEIGHT_GATE

pytestmark = pytest.mark.usefixtures("worker")


def _names(*services: str) -> list[str]:
    suffix = uuid.uuid4().hex[:6]  # service locks are global across tests
    return [f"{s}-{suffix}" for s in services]


def _seed(actuator: ActuatorServer, *services: str) -> None:
    for name in services:
        actuator.store.add(name, "1.0")


async def test_start_wait_status_list_and_audit_of_a_good_rollout(
    shiprail: Shiprail, actuator: ActuatorServer, tmp_path: Path, rollout_id: str
) -> None:
    a, b = _names("payments", "checkout")
    _seed(actuator, a, b)
    plan = write_plan(tmp_path, "cli-good", actuator.url, [{"name": a}, {"name": b, "depends_on": [a]}])

    # From a fresh interpreter, as a user runs it; the other calls fork from imports made once.
    run = await shiprail("start", str(plan), "--wait", "--id", rollout_id, fresh=True)
    assert run.code == 0, run.text
    assert f"started rollout {rollout_id}" in run.out
    assert re.search(rf"web UI: http://\S+/namespaces/default/workflows/{rollout_id}", run.out)
    assert "ended succeeded" in run.out

    run = await shiprail("status", rollout_id, "--json")
    assert run.code == 0, run.text
    status = json.loads(run.out)
    assert {"id", "plan", "phase", "services"} <= status.keys()
    assert (status["id"], status["plan"], status["phase"]) == (rollout_id, "cli-good", "succeeded")
    assert [(s["name"], s["wave"], s["step"], s["weight"], s["state"]) for s in status["services"]] == [
        (a, 1, 2, 100.0, "done"),
        (b, 2, 2, 100.0, "done"),
    ]
    assert all({"name", "wave", "step", "weight", "state", "gates"} <= s.keys() for s in status["services"])

    run = await shiprail("status", rollout_id)
    assert run.code == 0 and "succeeded" in run.out and a in run.out

    run = await shiprail("list", "--phase", "succeeded", "--service", a, "--json")
    assert run.code == 0, run.text
    assert [(r["id"], r["phase"], sorted(r["services"])) for r in json.loads(run.out)] == [
        (rollout_id, "succeeded", sorted([a, b]))
    ]
    run = await shiprail("list", "--phase", "rolled_back", "--service", a, "--json")
    assert json.loads(run.out) == []

    run = await shiprail("audit", rollout_id, "--jsonl")
    assert run.code == 0, run.text
    entries = [json.loads(line) for line in run.out.splitlines()][:-1]  # the last is the signed head
    assert "head" in json.loads(run.out.splitlines()[-1])
    assert entries[0]["kind"] == "phase" and entries[0]["actor"] == "cli-tester"
    times = [e["time"] for e in entries]
    assert times == sorted(times)
    actuations = [(e["service"], e["data"]["weight"]) for e in entries if e["kind"] == "actuation"]
    assert actuations == [(a, 10), (a, 100), (b, 10), (b, 100)]
    assert entries[-1]["kind"] == "phase" and "succeeded" in entries[-1]["message"]

    run = await shiprail("audit", rollout_id)
    assert run.code == 0 and f"actuation {a}: {a} → 10%" in run.out


async def test_start_wait_exits_1_when_the_rollout_rolls_back(
    shiprail: Shiprail,
    actuator: ActuatorServer,
    prometheus: PrometheusServer,
    tmp_path: Path,
    rollout_id: str,
) -> None:
    (a,) = _names("payments")
    _seed(actuator, a)
    plan = write_plan(
        tmp_path,
        "cli-bad",
        actuator.url,
        [{"name": a, "gates": ["weight"]}],
        prometheus={"url": prometheus.url},
        gates={"weight": WEIGHT_GATE},
        defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s"},
    )
    run = await shiprail("start", str(plan), "--wait", "--id", rollout_id)
    assert run.code == 1, run.text
    assert "ended rolled_back" in run.out and "weight" in run.out
    status = json.loads((await shiprail("status", rollout_id, "--json")).out)
    gates = status["services"][0]["gates"]
    assert [(g["name"], g["status"], g["value"], g["threshold"]) for g in gates] == [
        ("weight", "fail", 50.0, "≤ 20")
    ]
    assert actuator.store.exposures[a].weight == 0


async def test_pause_resume_abort_and_refusals(
    shiprail: Shiprail, actuator: ActuatorServer, tmp_path: Path, rollout_id: str
) -> None:
    (a,) = _names("inventory")
    _seed(actuator, a)
    plan = write_plan(
        tmp_path, "cli-control", actuator.url, [{"name": a}], defaults={"steps": [10, 100], "bake": "20s"}
    )
    assert (await shiprail("start", str(plan), "--id", rollout_id)).code == 0

    run = await shiprail("pause", rollout_id)
    assert run.code == 2 and "needs --reason" in run.err and "Traceback" not in run.text
    run = await shiprail("pause", rollout_id, "--reason", "checking dashboards")
    assert run.code == 0 and "paused" in run.out, run.text
    run = await shiprail("pause", rollout_id, "--reason", "again")
    assert run.code == 2 and "refused: rollout is already paused (by cli-tester)" in run.err
    run = await shiprail("approve", rollout_id)
    assert run.code == 2 and "awaiting approval" in run.err
    assert json.loads((await shiprail("status", rollout_id, "--json")).out)["phase"] == "paused"

    run = await shiprail("resume", rollout_id)
    assert run.code == 0 and "resumed" in run.out, run.text
    run = await shiprail("resume", rollout_id)
    assert run.code == 2 and "not paused" in run.err

    run = await shiprail("abort", rollout_id, "--reason", "wrong build")
    assert run.code == 0 and f"rolling back: {a}" in run.out, run.text
    run = await shiprail("resume", rollout_id)
    # Refused by the workflow while it finishes its rollback ("rollout is rolled_back"), or by
    # the client once it has closed ("has already ended (rolled_back)"): either names the phase.
    assert run.code == 2 and "refused: rollout" in run.err and "rolled_back" in run.err, run.err
    assert "Traceback" not in run.text

    run = await shiprail("status", rollout_id, "--watch")  # returns once the rollout has ended
    assert run.code == 0 and "rolled_back" in run.out, run.text
    lines = (await shiprail("audit", rollout_id, "--jsonl")).out.splitlines()
    entries = [json.loads(line) for line in lines[:-1]]
    human = [(e["actor"], e["message"]) for e in entries if e["kind"] == "human"]
    assert human == [
        ("cli-tester", "paused: checking dashboards"),
        ("cli-tester", "resumed"),
        ("cli-tester", "abort: wrong build"),
    ]
    assert actuator.store.exposures[a].weight == 0


async def test_approve_a_waiting_service(
    shiprail: Shiprail, actuator: ActuatorServer, tmp_path: Path, rollout_id: str
) -> None:
    (a,) = _names("ledger")
    _seed(actuator, a)
    plan = write_plan(tmp_path, "cli-approve", actuator.url, [{"name": a, "approval": "before_first_step"}])
    assert (await shiprail("start", str(plan), "--id", rollout_id)).code == 0
    run = await shiprail("approve", rollout_id, "--service", "nope")
    assert run.code == 2 and "'nope' is not in this rollout" in run.err
    for _ in range(100):  # until the workflow has reached the approval point
        status = json.loads((await shiprail("status", rollout_id, "--json")).out)
        if status["phase"] == "awaiting_approval":
            break
    assert status["services"][0]["state"] == "awaiting_approval"
    run = await shiprail("approve", rollout_id, "--service", a, "--reason", "change board ok")
    assert run.code == 0 and f"approved {a} step 1" in run.out, run.text
    run = await shiprail("status", rollout_id, "--watch")
    assert run.code == 0 and "succeeded" in run.out


async def test_no_wait_fails_fast_on_a_locked_service(
    shiprail: Shiprail, actuator: ActuatorServer, tmp_path: Path, rollout_id: str
) -> None:
    (a,) = _names("search")
    _seed(actuator, a)
    slow = write_plan(
        tmp_path, "cli-holder", actuator.url, [{"name": a}], defaults={"steps": [100], "bake": "30s"}
    )
    assert (await shiprail("start", str(slow), "--id", rollout_id)).code == 0
    for _ in range(100):
        if json.loads((await shiprail("status", rollout_id, "--json")).out)["services"][0]["weight"] == 100:
            break
    second = write_plan(tmp_path, "cli-second", actuator.url, [{"name": a}])
    run = await shiprail("start", str(second), "--no-wait", "--wait", "--id", f"{rollout_id}-2")
    assert run.code == 1, run.text
    assert f"service {a} is locked by rollout {rollout_id}" in run.out
    assert (await shiprail("abort", rollout_id, "--reason", "test over")).code == 0


async def test_bad_input_exits_2_without_a_traceback(shiprail: Shiprail, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: shiprail/v1\nkind: RolloutPlan\nmetadata: {name: x}\nspec:\n  services: []\n")
    run = await shiprail("start", str(bad))
    assert run.code == 2 and f"{bad}:5: spec.services" in run.err and "Traceback" not in run.text
    run = await shiprail("status", "no-such-rollout")
    assert run.code == 2 and "no rollout with id 'no-such-rollout'" in run.err
    run = await shiprail("abort", "no-such-rollout", "--reason", "x")
    assert run.code == 2 and "no rollout with id" in run.err
    run = await shiprail("start", str(tmp_path / "missing.yaml"))
    assert run.code == 2 and "missing.yaml" in run.err and "Traceback" not in run.text


COMMANDS = [
    ("start", "{plan}"),
    ("status", "x"),
    ("status", "x", "--json"),
    ("list",),
    ("pause", "x", "--reason", "r"),
    ("resume", "x"),
    ("approve", "x"),
    ("abort", "x", "--reason", "r"),
    ("audit", "x"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
async def test_every_command_exits_3_when_temporal_is_unreachable(
    shiprail: Shiprail, tmp_path: Path, command: tuple[str, ...]
) -> None:
    plan = write_plan(tmp_path, "cli-down", "http://127.0.0.1:1/exposure", [{"name": "a"}])
    down = f"127.0.0.1:{free_port()}"
    run = await shiprail(*(arg.format(plan=plan) for arg in command), address=down)
    assert run.code == 3, run.text
    assert f"cannot reach Temporal at {down}" in run.err and "Traceback" not in run.text
    assert "shiprail dev" in run.err  # the hint says how to get one


async def test_an_exported_audit_log_verifies_until_it_is_tampered_with(
    shiprail: Shiprail, actuator: ActuatorServer, tmp_path: Path, rollout_id: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "audit.pem", tmp_path / "audit.pub"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    actuator.store.add("aud-a", "1.0")
    plan = write_plan(tmp_path, "audited", actuator.url, [{"name": "aud-a"}])
    assert (await shiprail("start", str(plan), "--wait", "--id", rollout_id)).code == 0
    export = tmp_path / "audit.jsonl"
    run = await shiprail("audit", rollout_id, "--jsonl", "--key", str(private))
    export.write_text(run.out)
    run = await shiprail("audit", "verify", str(export), "--public-key", str(public))
    assert run.code == 0 and "intact" in run.out, run.text
    lines = export.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["message"] = "someone else did it"
    export.write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
    run = await shiprail("audit", "verify", str(export), "--public-key", str(public))
    assert run.code == 1 and "record 1 (line 2) was edited" in run.err, run.text
    assert (await shiprail("audit", "verify")).code == 2
    assert (
        await shiprail("audit", "verify", str(tmp_path / "missing.jsonl"), "--public-key", str(public))
    ).code == 2
