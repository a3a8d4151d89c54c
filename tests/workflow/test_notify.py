"""Notifications from a real rollout to a local receiver: every phase change, the gate
failure and the rollback arrive, the header secret is resolved on the worker and never
written to history, and a target that fails never blocks or fails the rollout."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from temporalio.client import Client

from shiprail.demo.actuator import ActuatorServer
from shiprail.status import Phase
from tests.workflow.helpers import WEIGHT_GATE, eventually, make_plan, start

pytestmark = pytest.mark.usefixtures("worker")

SECRET = "s3cret-notify-token-4711"


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received.append((self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str) -> list[dict[str, Any]]:
        return [body for p, _, body in self.received if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


async def test_phase_changes_gate_failure_and_rollback_arrive_without_secrets_in_history(
    client: Client,
    actuator: ActuatorServer,
    receiver: Receiver,
    rollout_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_TOKEN", SECRET)
    actuator.store.add("ntf-a", "1.0")
    plan = make_plan(
        actuator.url,
        [{"name": "ntf-a", "gates": ["weight"]}],
        gates={"weight": WEIGHT_GATE},
        notify=[
            {"type": "webhook", "url": f"{receiver.url}/hook", "headers": {"X-Token": "env:NOTIFY_TOKEN"}},
            {"type": "slack", "url": f"{receiver.url}/slack", "events": ["rollback"]},
        ],
    )
    handle = await start(client, plan, rollout_id)
    assert (await handle.result()).phase is Phase.ROLLED_BACK

    async def all_arrived() -> bool:
        return any(e["phase"] == "rolled_back" for e in receiver.events("/hook"))

    await eventually(all_arrived, 30, "the final notification")
    hook = receiver.events("/hook")
    kinds = [(e["event"], e["phase"]) for e in hook]
    assert ("phase", "running") in kinds and ("phase", "rolled_back") in kinds
    assert ("phase", "rolling_back") in kinds
    failed = [e for e in hook if e["event"] == "gate_failed"]
    assert failed and failed[0]["service"] == "ntf-a" and "weight" in failed[0]["message"]
    assert any(e["event"] == "rollback" for e in hook)
    assert all(e["subject"] == rollout_id and e["plan"] == plan.metadata.name for e in hook)
    tokens = {h.get("X-Token") for p, h, _ in receiver.received if p == "/hook"}
    assert tokens == {SECRET}
    slack = receiver.events("/slack")
    assert slack and all("text" in m and rollout_id in m["text"] for m in slack)
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    assert SECRET not in history


async def test_a_failing_target_never_blocks_or_fails_the_rollout(
    client: Client, actuator: ActuatorServer, rollout_id: str
) -> None:
    broken = Receiver(status=500)
    try:
        actuator.store.add("ntf-b", "1.0")
        plan = make_plan(
            actuator.url, [{"name": "ntf-b"}], notify=[{"type": "webhook", "url": f"{broken.url}/hook"}]
        )
        result = await (await start(client, plan, rollout_id)).result()
        assert result.phase is Phase.SUCCEEDED
        assert broken.received  # it was tried (and retried), and answered 500
    finally:
        broken.server.shutdown()


def test_a_literal_slack_hook_is_refused() -> None:
    from pydantic import ValidationError

    from shiprail.plan.notify import SlackTarget

    with pytest.raises(ValidationError, match="is a secret"):
        SlackTarget.model_validate({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"})
