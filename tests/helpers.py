"""Helpers shared by several test packages."""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shiprail.cli import run
from shiprail.gates.base import GateContext


def plan_document(
    url: str, services: list[dict[str, Any]], *, metadata: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """A plan whose services default to version 2.0 behind the HTTP actuator at `url`."""
    for service in services:
        service.setdefault("version", "2.0")
        service.setdefault("actuator", {"type": "http", "url": url})
    return {
        "apiVersion": "shiprail/v1",
        "kind": "RolloutPlan",
        "metadata": metadata or {"name": "test-plan"},
        "spec": {**spec, "services": services},
    }


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """`shiprail ARGS` in this process: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["shiprail", *args])
    code = run()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def signing_identity(tmp_path: Path, name: str) -> tuple[Path, bytes, str]:
    """A new Ed25519 identity: its PEM file (for SHIPRAIL_SIGNING_KEY), its raw private key
    and its base64 public key (for `spec.access.keys`)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    path = tmp_path / f"{name}.pem"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    return path, raw, public


def gate_context(
    seconds: float,
    *,
    bake: float = 300,
    interval: float = 10,
    service: str = "payments",
    start: datetime = datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
) -> GateContext:
    """A canary at 10 % of version 2 over 1, `seconds` into a step that began at `start`."""
    return GateContext(
        service=service,
        version="2",
        stable_version="1",
        weight=10,
        step_start=start,
        now=start + timedelta(seconds=seconds),
        bake=timedelta(seconds=bake),
        interval=timedelta(seconds=interval),
    )
