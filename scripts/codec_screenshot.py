"""Reproduce docs/codec-ui.png: a sealed rollout's details decoded by the web UI.

Starts a dev server whose UI uses `shiprail codec-server`, runs one rollout through the demo
actuator with codec keys on client and worker, and has headless Chromium (Debian
`chromium`) photograph the workflow's page. `python scripts/codec_screenshot.py [OUT]`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from shiprail.codec import Keyring, new_key_line
from shiprail.codec_server import CodecServer
from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.ports import free_port
from shiprail.devstack.temporal import TemporalDevServer


async def main(out: Path) -> None:
    os.environ["SHIPRAIL_CODEC_KEYS"] = new_key_line("k1")
    from shiprail.client import connect
    from shiprail.worker import running_worker
    from tests.workflow.helpers import make_plan, start

    ui_port = free_port()
    codec = CodecServer(
        Keyring.parse(os.environ["SHIPRAIL_CODEC_KEYS"], "env"),
        port=0,
        origins={f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"},
        token=None,
    )
    threading.Thread(target=codec.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as state:
        server = TemporalDevServer(
            Path(state), port=free_port(), ui_port=ui_port, extra_args=["--ui-codec-endpoint", codec.url]
        )
        server.start()
        actuator = ActuatorServer().start()
        try:
            for name in ("payments", "checkout"):
                actuator.store.add(name, "1.4.2")
            client = await connect(server.address)
            plan = make_plan(
                actuator.url,
                [
                    {"name": "payments", "version": "1.5.0"},
                    {"name": "checkout", "version": "1.5.0", "depends_on": ["payments"]},
                ],
                defaults={"steps": [10, 50, 100], "bake": "1s", "interval": "1s"},
            )
            async with running_worker(client):
                handle = await start(client, plan, "sealed-demo")
                await handle.result()
            url = f"{server.ui_url}/namespaces/default/workflows/sealed-demo"
            subprocess.run(
                [
                    "chromium",
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--window-size=1400,1100",
                    "--virtual-time-budget=20000",
                    f"--screenshot={out}",
                    url,
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            print(f"{out} ← {url}")
        finally:
            actuator.stop()
            server.stop()
            codec.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/codec-ui.png").resolve()))
