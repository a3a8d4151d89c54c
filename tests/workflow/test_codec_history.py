"""Sealed history on the real dev server: a rollout run by a worker with codec keys leaves no
plan text, gate value, actuator URL or failure message readable in Temporal's history, and
`temporal workflow show --codec-endpoint` through `shiprail codec-server` reads it all."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import uuid
from typing import Any

import pytest
from temporalio.client import Client

from shiprail.client import connect
from shiprail.codec import Keyring, new_key_line
from shiprail.codec_server import CodecServer
from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.temporal import TemporalDevServer, temporal_binary
from shiprail.status import Phase
from shiprail.worker import running_worker
from tests.workflow.helpers import WEIGHT_GATE, make_plan, start

KEY = new_key_line("k1")


_NOT_ENCODED = {"searchAttributes", "workflowId"}


def _outside_search_attributes(node: Any) -> Any:
    """History as JSON without search attributes and workflow ids, which no codec encodes
    (by Temporal's design): service names are in both, as the lock workflows' ids."""
    if isinstance(node, dict):
        return {k: _outside_search_attributes(v) for k, v in node.items() if k not in _NOT_ENCODED}
    if isinstance(node, list):
        return [_outside_search_attributes(v) for v in node]
    return node


async def test_history_is_sealed_and_the_codec_server_opens_it(
    client: Client,
    temporal_server: TemporalDevServer,
    actuator: ActuatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPRAIL_CODEC_KEYS", KEY)
    actuator.store.add("vault-7f3a", "9.8.6-stable")
    sealed_client = await connect(temporal_server.address)
    queue = f"sealed-{uuid.uuid4().hex[:8]}"
    rollout_id = f"sealed-{uuid.uuid4().hex[:8]}"
    plan = make_plan(
        actuator.url,
        [{"name": "vault-7f3a", "version": "9.8.7-sealed"}],
        gates={"weight": WEIGHT_GATE},
        defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s", "gates": ["weight"]},
    )
    async with running_worker(sealed_client, task_queue=queue):
        handle = await start(sealed_client, plan, rollout_id, task_queue=queue)
        result = await handle.result()
    # The weight gate fails at 50 %: a rollback, a gate failure and its message.
    assert result.phase is Phase.ROLLED_BACK, result.reason
    assert "weight" in result.reason

    raw = json.dumps(
        _outside_search_attributes(
            (await client.get_workflow_handle(rollout_id).fetch_history()).to_json_dict()
        )
    )
    for secret in ("vault-7f3a", "9.8.7-sealed", actuator.url, "vector(", "rolled back"):
        assert secret not in raw, f"{secret!r} is readable in history: {_where(raw, secret)}"
    assert "YmluYXJ5L2VuY3J5cHRlZA" in raw  # the sealed payloads' encoding, binary/encrypted

    codec = CodecServer(Keyring.parse(KEY, "test"), port=0, origins=set(), token=None)
    threading.Thread(target=codec.serve_forever, daemon=True).start()
    try:
        shown = subprocess.run(
            [
                temporal_binary(),
                "workflow",
                "show",
                "--workflow-id",
                rollout_id,
                "--address",
                temporal_server.address,
                "--codec-endpoint",
                codec.url,
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    finally:
        codec.stop()
    opened = "\n".join(_payload_texts(json.loads(shown)))
    assert '"version":"9.8.7-sealed"' in opened and actuator.url in opened
    assert "binary/encrypted" not in shown and "YmluYXJ5L2VuY3J5cHRlZA" not in shown


def _payload_texts(node: Any) -> list[str]:
    """The data of every payload in `temporal … --output json`, which prints it in base64."""
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
            return [base64.b64decode(node["data"]).decode(errors="replace")]
        return [t for v in node.values() for t in _payload_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _payload_texts(v)]
    return []


def _where(raw: str, needle: str) -> list[str]:
    out = []
    i = raw.find(needle)
    while i >= 0 and len(out) < 8:
        out.append(raw[max(0, i - 200) : i + 40])
        i = raw.find(needle, i + 1)
    return out
