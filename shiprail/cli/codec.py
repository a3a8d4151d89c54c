"""`shiprail codec-server`: decode sealed history for the web UI and `temporal --codec-endpoint`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shiprail.cli._console import out
from shiprail.errors import BadInput

DEFAULT_PORT = 8234


def codec_server(
    port: Annotated[int, typer.Option(help="port to listen on")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    origin: Annotated[
        list[str] | None,
        typer.Option(help="web UI origin allowed to call it (CORS); repeat for more; default the dev UI"),
    ] = None,
    generate_key: Annotated[
        str | None, typer.Option(metavar="ID", help="print a new random key line `ID=base64key` and exit")
    ] = None,
) -> None:
    """Serve Temporal's remote codec API with the keys of SHIPRAIL_CODEC_KEYS (or _FILE).

    Point the web UI at it (Settings → Codec Server, or `temporal server start-dev
    --ui-codec-endpoint URL`) or pass `--codec-endpoint URL` to the `temporal` CLI. With
    SHIPRAIL_CODEC_TOKEN set, every request needs `Authorization: Bearer <token>`.
    """
    from shiprail.codec import Keyring, new_key_line

    if generate_key is not None:
        if not generate_key or "=" in generate_key or "," in generate_key:
            raise BadInput("--generate-key: a key id is a word without `=` or `,`")
        out.print(new_key_line(generate_key), highlight=False, soft_wrap=True)
        return
    keyring = Keyring.from_environment()
    if keyring is None:
        raise BadInput(
            "no codec keys: set SHIPRAIL_CODEC_KEYS=id=base64key (or SHIPRAIL_CODEC_KEYS_FILE)",
            hint="make one with `shiprail codec-server --generate-key k1`",
        )
    from shiprail.codec_server import CodecServer

    origins = set(origin or ["http://localhost:8233", "http://127.0.0.1:8233"])
    try:
        server = CodecServer(
            keyring, host=host, port=port, origins=origins, token=os.environ.get("SHIPRAIL_CODEC_TOKEN")
        )
    except OSError as exc:
        raise BadInput(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror}") from None
    out.print(
        f"Codec server at [bold]{server.url}[/] (keys: {', '.join(keyring.keys)}; sealing with {keyring.active})"
    )
    out.print(f"CORS origins: {', '.join(sorted(origins))}. Press Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("stopping…")
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    app.command("codec-server")(codec_server)
