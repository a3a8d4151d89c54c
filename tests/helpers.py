"""Helpers shared by several test packages."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from shiprail.cli import run


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
