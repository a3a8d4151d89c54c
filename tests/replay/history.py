"""Fetching a rollout's history with its lock children, storing it, replaying it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from shiprail.worker import WORKFLOW_RUNNER, WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"


async def fetch(client: Client, handle: WorkflowHandle[Any, Any]) -> list[WorkflowHistory]:
    """The rollout's history and those of the service-lock workflows it started."""
    rollout = await handle.fetch_history()
    found = [rollout]
    for event in rollout.events:
        if event.HasField("child_workflow_execution_started_event_attributes"):
            child = event.child_workflow_execution_started_event_attributes.workflow_execution
            found.append(
                await client.get_workflow_handle(child.workflow_id, run_id=child.run_id).fetch_history()
            )
    return found


def save(name: str, histories: list[WorkflowHistory]) -> Path:
    path = HISTORIES / f"{name}.json"
    documents = [{"workflow_id": h.workflow_id, "history": json.loads(h.to_json())} for h in histories]
    path.write_text(json.dumps(documents, indent=1) + "\n")
    return path


def load(path: Path) -> list[WorkflowHistory]:
    return [WorkflowHistory.from_json(d["workflow_id"], d["history"]) for d in json.loads(path.read_text())]


async def replay(histories: list[WorkflowHistory]) -> None:
    """Raise if today's workflow code would take a different path through any history."""
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )
    for history in histories:
        await replayer.replay_workflow(history)
