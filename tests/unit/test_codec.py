"""The AES-GCM payload codec and its HTTP server: sealing, rotation, tampering, CORS, tokens."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator

import pytest
import requests
from temporalio.api.common.v1 import Payload

from shiprail.codec import AesGcmCodec, CodecError, Keyring, new_key_line, open_payload, seal
from shiprail.codec_server import CodecServer
from shiprail.errors import BadInput

# Fixed keys: parametrised ids must be the same in every xdist worker.
OLD, NEW = (
    f"k1={base64.b64encode(bytes(range(32))).decode()}",
    f"k2={base64.b64encode(bytes(range(32, 64))).decode()}",
)
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"plan": "payments-secret-plan"}')


def test_a_sealed_payload_holds_no_plain_text_and_opens_again() -> None:
    keyring = Keyring.parse(OLD, "test")
    sealed = seal(keyring, PLAIN)
    assert b"payments" not in sealed.SerializeToString()
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert open_payload(keyring, sealed) == PLAIN
    assert seal(keyring, PLAIN).data != sealed.data  # a fresh nonce every time


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    before = seal(Keyring.parse(OLD, "test"), PLAIN)
    rotated = Keyring.parse(f"{NEW},{OLD}", "test")
    assert open_payload(rotated, before) == PLAIN
    assert seal(rotated, PLAIN).metadata["encryption-key-id"] == b"k2"
    with pytest.raises(CodecError, match="sealed with key 'k2', not in the keyring \\(k1\\)"):
        open_payload(Keyring.parse(OLD, "test"), seal(rotated, PLAIN))


def test_an_altered_payload_or_a_swapped_key_id_does_not_open() -> None:
    keyring = Keyring.parse(f"{NEW},{OLD}", "test")
    sealed = seal(keyring, PLAIN)
    flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="wrong key or altered"):
        open_payload(keyring, flipped)
    relabelled = Payload(metadata={**sealed.metadata, "encryption-key-id": b"k1"}, data=sealed.data)
    with pytest.raises(CodecError, match="does not open"):
        open_payload(keyring, relabelled)


def test_a_new_key_line_is_a_working_key() -> None:
    keyring = Keyring.parse(new_key_line("fresh"), "test")
    assert keyring.active == "fresh" and open_payload(keyring, seal(keyring, PLAIN)) == PLAIN


def test_payloads_from_before_the_codec_pass_through() -> None:
    assert open_payload(Keyring.parse(OLD, "test"), PLAIN) == PLAIN


def test_the_codec_round_trips_lists() -> None:
    codec = AesGcmCodec(Keyring.parse(OLD, "test"))
    assert asyncio.run(codec.decode(asyncio.run(codec.encode([PLAIN, PLAIN])))) == [PLAIN, PLAIN]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no keys"),
        ("k1", "each key is `id=base64key`"),
        ("k1=not*base64", "key 'k1' is not base64"),
        (f"k1={base64.b64encode(b'short').decode()}", "key 'k1' is 5 bytes; AES-256 needs 32"),
        (f"{OLD},{OLD}", "key id 'k1' is listed twice"),
    ],
)
def test_bad_keys_are_named(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        Keyring.parse(text, "SHIPRAIL_CODEC_KEYS")


def test_the_keyring_comes_from_the_environment_or_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    monkeypatch.delenv("SHIPRAIL_CODEC_KEYS", raising=False)
    monkeypatch.delenv("SHIPRAIL_CODEC_KEYS_FILE", raising=False)
    assert Keyring.from_environment() is None
    keys = tmp_path / "keys"  # type: ignore[operator]
    keys.write_text(f"# rotated 2026-12\n{NEW}\n{OLD}\n")
    monkeypatch.setenv("SHIPRAIL_CODEC_KEYS_FILE", str(keys))
    keyring = Keyring.from_environment()
    assert keyring is not None and keyring.active == "k2" and set(keyring.keys) == {"k1", "k2"}
    monkeypatch.setenv("SHIPRAIL_CODEC_KEYS", OLD)
    with pytest.raises(BadInput, match="not both"):
        Keyring.from_environment()


UI = "http://localhost:8233"


@pytest.fixture
def server() -> Iterator[CodecServer]:
    running = CodecServer(Keyring.parse(OLD, "test"), port=0, origins={UI}, token="s3cret")
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running
    running.stop()


def _body(*payloads: Payload) -> dict[str, object]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def test_the_server_encodes_and_decodes_the_remote_codec_json(server: CodecServer) -> None:
    auth = {"Authorization": "Bearer s3cret", "X-Namespace": "default"}
    encoded = requests.post(f"{server.url}/encode", json=_body(PLAIN), headers=auth).json()
    assert base64.b64decode(encoded["payloads"][0]["metadata"]["encoding"]) == b"binary/encrypted"
    decoded = requests.post(f"{server.url}/decode", json=encoded, headers=auth).json()
    assert base64.b64decode(decoded["payloads"][0]["data"]) == PLAIN.data


def test_the_server_wants_its_token(server: CodecServer) -> None:
    assert requests.post(f"{server.url}/decode", json=_body(PLAIN)).status_code == 401
    wrong = requests.post(
        f"{server.url}/decode", json=_body(PLAIN), headers={"Authorization": "Bearer guess"}
    )
    assert wrong.status_code == 401


def test_cors_answers_the_ui_origin_only(server: CodecServer) -> None:
    preflight = requests.options(f"{server.url}/decode", headers={"Origin": UI})
    assert preflight.headers["Access-Control-Allow-Origin"] == UI
    assert "X-Namespace" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = requests.options(f"{server.url}/decode", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_bad_requests_get_a_message_not_a_crash(server: CodecServer) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    garbage = requests.post(f"{server.url}/decode", data=b"{not json", headers=auth)
    assert garbage.status_code == 400 and "not a payloads document" in garbage.json()["message"]
    foreign = seal(Keyring.parse(NEW, "test"), PLAIN)
    unknown = requests.post(f"{server.url}/decode", json=_body(foreign), headers=auth)
    assert unknown.status_code == 400 and "'k2', not in the keyring" in unknown.json()["message"]
    assert requests.post(f"{server.url}/other", json={}, headers=auth).status_code == 404
