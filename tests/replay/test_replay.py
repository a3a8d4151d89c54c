"""Replay safety: today's workflow code must take the same path through recorded histories.

The stored corpus stands for rollouts started by earlier releases that are still running
when a new worker is deployed; a fresh run of each scenario guards the current code.
"""

from __future__ import annotations

import base64
import gc
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.client import Client, WorkflowHistory

from shiprail.devstack.prometheus import PrometheusServer
from shiprail.worker import WORKFLOWS
from shiprail.workflows import lock
from shiprail.workflows.rollout import control, saga, state
from shiprail.workflows.rollout import workflow as rollout
from tests.replay import history
from tests.replay.scenarios import SCENARIOS, SECRET_ENV, SECRET_VALUE, Rig, new_id

STORED = sorted(history.HISTORIES.glob("*.json"))


def test_the_corpus_covers_every_scenario() -> None:
    # `<scenario>.json` is today's recording; `<scenario>@<label>.json` one by an earlier
    # release whose rollouts may still be running.
    assert {p.stem for p in STORED if "@" not in p.stem} == set(SCENARIOS)
    assert {p.stem.split("@")[0] for p in STORED} == set(SCENARIOS)


@pytest.mark.parametrize("path", STORED, ids=[p.stem for p in STORED])
async def test_stored_history_replays(path: Path) -> None:
    histories = history.load(path)
    assert histories[0].workflow_id.startswith("replay-")
    assert len(histories) >= 2, "the rollout and at least one service lock"
    await history.replay(histories)


async def test_a_changed_workflow_is_detected() -> None:
    """The replayer must notice non-determinism, or the tests above prove nothing."""
    tampered = json.loads(STORED[0].read_text())
    events = tampered[0]["history"]["events"]
    first = next(
        i for i, e in enumerate(events) if e.get("eventType") == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    )
    events[first]["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "renamed_activity"
    histories = [WorkflowHistory.from_json(d["workflow_id"], d["history"]) for d in tampered]
    with pytest.raises(Exception, match=r"(?i)nondetermin"):
        await history.replay(histories[:1])


async def test_a_replayed_rollout_re_imports_only_its_own_module() -> None:
    """The sandbox runs every workflow run on a fresh import of its own module; anything
    meant to be passed through but imported as a package attribute (`from shiprail import
    x`) is executed again per run as well, which at hundreds of concurrent rollouts costs
    the worker memory and start-up time."""
    histories = history.load(history.HISTORIES / "rollback.json")
    gc.collect()
    gc.disable()  # a fresh module lives in a reference cycle: count it before it is collected
    try:
        before = _modules()
        await history.replay(histories)
        fresh = _modules() - before
    finally:
        gc.enable()
    ours = {name for name in fresh if name.split(".")[0] == "shiprail"}
    assert "shiprail.workflows.rollout.workflow" in ours  # the count sees what the sandbox imports
    # The replayer checks each registered workflow's module once in the sandbox, too; the
    # rollout's other modules (state, saga, control) are passed through, never re-run.
    workflow_modules = {w.__module__ for w in WORKFLOWS}
    packages = {m.rsplit(".", 1)[0] for m in workflow_modules}
    assert ours <= {"shiprail", *packages, *workflow_modules}


def test_no_workflow_module_builds_a_pydantic_model() -> None:
    """A workflow's own module runs again for every workflow run, and a model over the
    plan takes milliseconds and over 20 KB to build: models live in passed-through modules."""
    models = {
        (module.__name__, name): value.__module__
        for module in (rollout, state, saga, control, lock)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, BaseModel)
    }
    assert models[(rollout.__name__, "RolloutInput")] == "shiprail.workflows.inputs"  # imported ones are seen
    assert [name for (module, name), home in models.items() if home == module] == []


def _modules() -> Counter[str]:
    return Counter(o.__name__ for o in gc.get_objects() if type(o).__name__ == "module")


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_fresh_run_replays(client: Client, prometheus: PrometheusServer, name: str) -> None:
    handle, expected = await SCENARIOS[name](Rig(client, prometheus.url), new_id(name))
    assert (await handle.result()).phase is expected
    histories = await history.fetch(client, handle)
    await history.replay(histories)
    if name == "secret_header":
        decoded = "\n".join(_decoded_payloads(json.loads(h.to_json())) for h in histories)
        assert f"env:{SECRET_ENV}" in decoded  # the reference is there: the search looks in the right place
        assert SECRET_VALUE not in decoded and SECRET_VALUE not in json.dumps(
            [h.to_json() for h in histories]
        )


def test_stored_secret_history_holds_only_the_reference() -> None:
    documents = json.loads((history.HISTORIES / "secret_header.json").read_text())
    decoded = "\n".join(_decoded_payloads(d["history"]) for d in documents)
    assert f"env:{SECRET_ENV}" in decoded
    assert SECRET_VALUE not in decoded


def _decoded_payloads(node: Any) -> str:
    return "\n".join(_walk(node))


def _walk(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                yield base64.b64decode(value).decode("utf-8", "replace")
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, str):
        yield node
