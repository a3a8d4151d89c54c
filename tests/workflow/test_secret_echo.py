"""An actuator that echoes the token it was sent in its error body: the failure the
rollout reports, and so its history, carry `[redacted]`, never the token."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.client import Client

from shiprail.status import Phase
from tests.workflow.helpers import make_plan, start

pytestmark = pytest.mark.usefixtures("worker")

TOKEN = "Bearer echo-me-4f1c9a"


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"denied: you sent Authorization: {self.headers.get('Authorization')}".encode()
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_an_echoed_token_never_reaches_history(
    client: Client, rollout_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_TOKEN", TOKEN)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/exposure"
        actuator = {"type": "http", "url": url, "headers": {"Authorization": "env:ECHO_TOKEN"}}
        plan = make_plan(url, [{"name": "echo-a", "actuator": actuator}])
        handle = await start(client, plan, rollout_id)
        result = await handle.result()
    finally:
        server.shutdown()
    assert result.phase is Phase.FAILED
    assert "HTTP 403: denied: you sent Authorization: [redacted]" in result.reason
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    assert "echo-me-4f1c9a" not in history
