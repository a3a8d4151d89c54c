"""The codec server the Temporal web UI and `temporal --codec-endpoint` call to read sealed history.

Temporal's remote codec contract: `POST /decode` (and `/encode`) with a JSON body
`{"payloads": [{"metadata": {...base64...}, "data": "base64"}]}`, answered in kind. The UI
calls it from the browser, so it answers CORS preflights for the origins it is told (the
dev server's UI by default) and nothing else. With a token (`SHIPRAIL_CODEC_TOKEN`), every
request must carry `Authorization: Bearer <token>`; on a real cluster put it behind the
same single sign-on as the UI and have the UI pass the user's access token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from shiprail.codec import CodecError, Keyring, open_payload, seal
from shiprail.http_server import HttpServer

_MAX_BODY = 8 * 1024 * 1024


def _handler(keyring: Keyring, origins: set[str], token: str | None) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[Keyring, Payload], Payload]] = {"/encode": seal, "/decode": open_payload}

    class Handler(BaseHTTPRequestHandler):
        server_version = "shiprail-codec"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _cors(self) -> None:
            origin = self.headers.get("Origin")
            if origin and ("*" in origins or origin in origins):
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
                self.send_header("Vary", "Origin")

        def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:
            self.send_response(HTTPStatus.OK)
            self._cors()
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                self._answer(HTTPStatus.NOT_FOUND, {"message": "POST /encode or /decode"})
                return
            if token is not None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    self._answer(HTTPStatus.UNAUTHORIZED, {"message": "a bearer token is required"})
                    return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": f"at most {_MAX_BODY} bytes"})
                return
            try:
                payloads = json_format.Parse(self.rfile.read(length) or b"{}", Payloads())
                answered = Payloads(payloads=[route(keyring, p) for p in payloads.payloads])
            except json_format.ParseError as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"message": f"not a payloads document: {exc}"})
                return
            except CodecError as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"message": str(exc)})
                return
            self._answer(HTTPStatus.OK, json_format.MessageToDict(answered))

    return Handler


class CodecServer:
    """The server on a thread; `stop` shuts it down."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        host: str = "127.0.0.1",
        port: int = 8234,
        origins: set[str],
        token: str | None,
    ) -> None:
        self._httpd = HttpServer((host, port), _handler(keyring, origins, token))
        self.url = f"http://{host}:{self._httpd.server_address[1]}"

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    async def serve(self) -> None:
        await asyncio.to_thread(self._httpd.serve_forever)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
