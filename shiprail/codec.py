"""Encrypted workflow history: an AES-GCM payload codec with key ids for rotation.

Temporal keeps every workflow input, result, activity argument, heartbeat and failure in
its history, readable by anyone who can read the namespace. With keys configured, every
payload shiprail writes is sealed with AES-256-GCM before it leaves the process: plans,
gate values, actuator URLs and audit entries sit in history as ciphertext. Failure
messages and stack traces are moved into an encoded payload as well (Temporal's
`DefaultFailureConverterWithEncodedAttributes`), so an error text is sealed too.

Keys come from `SHIPRAIL_CODEC_KEYS` (`id=base64key,id=base64key`) or from the file named
by `SHIPRAIL_CODEC_KEYS_FILE` (one `id=base64key` a line, `#` comments). The first key
seals; every key listed opens, which is how a key is rotated: put the new key first, keep
the old one until no history that needs it is retained. The key id travels in the
payload's metadata and is bound into the ciphertext as associated data, so a payload
cannot be passed off as sealed by another key.

Not encoded by any codec (Temporal's own design): workflow ids, search attributes, update
names, client identities and the workflow's summary and details shown in the UI. shiprail
puts no secret in any of them.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from shiprail.errors import BadInput

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12


class CodecError(Exception):
    """A payload that cannot be opened: unknown key id, wrong key, or tampered bytes."""


@dataclass(frozen=True)
class Keyring:
    """AES-256 keys by id; `active` seals, all of them open."""

    keys: dict[str, bytes]
    active: str

    @classmethod
    def parse(cls, text: str, source: str) -> Keyring:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
        for entry in filter(None, entries):
            key_id, sep, encoded = entry.partition("=")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise BadInput(f"{source}: each key is `id=base64key`, not {entry[:20]!r}…")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise BadInput(f"{source}: key {key_id!r} is not base64") from None
            if len(key) != 32:
                raise BadInput(f"{source}: key {key_id!r} is {len(key)} bytes; AES-256 needs 32")
            if key_id in keys:
                raise BadInput(f"{source}: key id {key_id!r} is listed twice")
            keys[key_id] = key
            order.append(key_id)
        if not keys:
            raise BadInput(f"{source}: no keys")
        return cls(keys, order[0])

    @classmethod
    def from_environment(cls) -> Keyring | None:
        inline = os.environ.get("SHIPRAIL_CODEC_KEYS")
        path = os.environ.get("SHIPRAIL_CODEC_KEYS_FILE")
        if inline and path:
            raise BadInput("set SHIPRAIL_CODEC_KEYS or SHIPRAIL_CODEC_KEYS_FILE, not both")
        if inline:
            return cls.parse(inline, "SHIPRAIL_CODEC_KEYS")
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise BadInput(f"SHIPRAIL_CODEC_KEYS_FILE: cannot read {path}: {exc.strerror}") from None
            return cls.parse(text, path)
        return None


def new_key_line(key_id: str) -> str:
    """A fresh random key, in the `id=base64key` form the keyring reads."""
    return f"{key_id}={base64.b64encode(os.urandom(32)).decode()}"


def seal(keyring: Keyring, payload: Payload) -> Payload:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE)
    key_id = keyring.active.encode()
    sealed = AESGCM(keyring.keys[keyring.active]).encrypt(nonce, payload.SerializeToString(), key_id)
    return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)


def open_payload(keyring: Keyring, payload: Payload) -> Payload:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if payload.metadata.get("encoding") != ENCODING:
        return payload  # written before the codec was turned on
    key_id = payload.metadata.get(KEY_ID, b"")
    key = keyring.keys.get(key_id.decode(errors="replace"))
    if key is None:
        known = ", ".join(sorted(keyring.keys))
        raise CodecError(
            f"payload sealed with key {key_id.decode(errors='replace')!r}, not in the keyring ({known})"
        )
    try:
        plain = AESGCM(key).decrypt(payload.data[:_NONCE], payload.data[_NONCE:], key_id)
    except InvalidTag:
        raise CodecError(
            f"payload sealed with key {key_id.decode()!r} does not open: wrong key or altered"
        ) from None
    return Payload.FromString(plain)


class AesGcmCodec(PayloadCodec):
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [seal(self.keyring, p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [open_payload(self.keyring, p) for p in payloads]


def data_converter(base: DataConverter, keyring: Keyring | None) -> DataConverter:
    """`base` with the codec, and failures' messages moved into sealed payloads."""
    if keyring is None:
        return base
    return replace(
        base,
        payload_codec=AesGcmCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def sealed(payloads: Iterable[Payload]) -> bool:
    return all(p.metadata.get("encoding") == ENCODING for p in payloads)
