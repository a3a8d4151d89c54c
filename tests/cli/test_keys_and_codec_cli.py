"""`shiprail keys new` and `shiprail codec-server`'s key handling, as a user types them."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail.cli.keys import public_line, signing_key
from shiprail.codec import Keyring
from tests.helpers import run_cli


def test_keys_new_writes_a_private_key_and_prints_its_public_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pem = tmp_path / "alice.pem"
    code, out, _ = run_cli(monkeypatch, capsys, "keys", "new", "alice@example.com", "--out", str(pem))
    assert code == 0 and pem.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("SHIPRAIL_SIGNING_KEY", str(pem))
    key = signing_key()
    assert key is not None and public_line("alice@example.com", key) in out
    code, _, err = run_cli(monkeypatch, capsys, "keys", "new", "alice@example.com", "--out", str(pem))
    assert code == 2 and "exists; pass --force" in err


def test_a_missing_or_wrong_signing_key_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SHIPRAIL_SIGNING_KEY", str(tmp_path / "nope.pem"))
    code, _, err = run_cli(monkeypatch, capsys, "abort", "r1", "--reason", "x")
    assert code == 2 and "SHIPRAIL_SIGNING_KEY: no such file" in err and "Traceback" not in err
    (tmp_path / "bad.pem").write_text("not a key")
    monkeypatch.setenv("SHIPRAIL_SIGNING_KEY", str(tmp_path / "bad.pem"))
    code, _, err = run_cli(monkeypatch, capsys, "abort", "r1", "--reason", "x")
    assert code == 2 and "not a readable PEM private key" in err


def test_codec_server_generates_keys_and_refuses_to_run_without(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "codec-server", "--generate-key", "k7")
    assert code == 0 and Keyring.parse(out.strip(), "out").active == "k7"
    monkeypatch.delenv("SHIPRAIL_CODEC_KEYS", raising=False)
    monkeypatch.delenv("SHIPRAIL_CODEC_KEYS_FILE", raising=False)
    code, _, err = run_cli(monkeypatch, capsys, "codec-server")
    assert code == 2 and "no codec keys" in err and "--generate-key" in err
    monkeypatch.setenv("SHIPRAIL_CODEC_KEYS", "k1=short")
    code, _, err = run_cli(monkeypatch, capsys, "codec-server")
    assert code == 2 and "SHIPRAIL_CODEC_KEYS: key 'k1'" in err
