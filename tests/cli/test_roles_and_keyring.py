"""Plans and trains name `approvers` and `operators` in their spec (DESIGN §2); the public
keys that prove those identities come from `spec.access.keys` or from `$SHIPRAIL_KEYRING`.
A plan naming someone who could never sign is refused when it starts, before anything is
sent, with the field and file named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shiprail.devstack.ports import free_port
from tests.cli.conftest import write_plan
from tests.helpers import run_cli, signing_identity


def _keyring(tmp_path: Path, **keys: str) -> Path:
    path = tmp_path / "keyring.yaml"
    document = {
        "apiVersion": "shiprail/v1",
        "kind": "Keyring",
        "keys": keys,
        "groups": {"release": ["alice"]},
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_roles_named_in_the_spec_need_keys_from_the_plan_or_the_keyring(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        "roles",
        "http://127.0.0.1:1/exposure",
        [{"name": "a"}],
        approvers=["group:release"],
        operators=["bob"],
    )
    code, _, err = run_cli(monkeypatch, capsys, "plan", "check", str(plan))
    assert code == 0, err

    monkeypatch.delenv("SHIPRAIL_KEYRING", raising=False)
    down = f"127.0.0.1:{free_port()}"
    code, _, err = run_cli(monkeypatch, capsys, "start", str(plan), "--address", down)
    assert code == 2, err
    assert f"{plan} (no $SHIPRAIL_KEYRING set): spec.approvers: group:release names no group" in err
    assert "(and 1 more)" in err and "Traceback" not in err

    _, _, alice = signing_identity(tmp_path, "alice")
    _, _, bob = signing_identity(tmp_path, "bob")
    monkeypatch.setenv("SHIPRAIL_KEYRING", str(_keyring(tmp_path, alice=alice)))
    code, _, err = run_cli(monkeypatch, capsys, "start", str(plan), "--address", down)
    assert code == 2 and "spec.operators: 'bob' has no public key" in err, err

    # With every key found the plan is good to go: the next thing is Temporal (down here).
    monkeypatch.setenv("SHIPRAIL_KEYRING", str(_keyring(tmp_path, alice=alice, bob=bob)))
    code, _, err = run_cli(monkeypatch, capsys, "start", str(plan), "--address", down)
    assert code == 3 and "cannot reach Temporal" in err, err


def test_a_broken_keyring_is_named_with_its_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, "roles", "http://127.0.0.1:1/exposure", [{"name": "a"}], operators=["bob"])
    keyring = tmp_path / "keyring.yaml"
    keyring.write_text("apiVersion: shiprail/v1\nkind: Keyring\nkeys:\n  bob: not-a-key\n")
    monkeypatch.setenv("SHIPRAIL_KEYRING", str(keyring))
    code, _, err = run_cli(monkeypatch, capsys, "start", str(plan), "--address", f"127.0.0.1:{free_port()}")
    assert code == 2 and f"{keyring}:4" in err and "not base64" in err, err
    assert "Traceback" not in err
