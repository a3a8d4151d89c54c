"""`shiprail audit ID [--jsonl]` and `shiprail audit verify FILE`: the audit log, and its
tamper-evident export (a hash chain ending in an Ed25519-signed head).

The signing key is `--key`, `$SHIPRAIL_AUDIT_KEY`, or one created on first use in the
user's config directory (`audit-ed25519.pem`, with its public half `audit-ed25519.pub`
beside it, which is what `verify` checks against unless told `--public-key`).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_public_key,
)

from shiprail.audit_chain import Verdict, verify
from shiprail.errors import BadInput
from shiprail.keyfiles import read_private_key

_NAME = "audit-ed25519"


def _default_dir() -> Path:
    return Path(platformdirs.user_config_dir("shiprail"))


def signing_key(path: Path | None) -> Ed25519PrivateKey:
    """The key that signs a chain's head: given, from the environment, or made once."""
    given = path or (Path(os.environ["SHIPRAIL_AUDIT_KEY"]) if os.environ.get("SHIPRAIL_AUDIT_KEY") else None)
    if given is not None:
        return _read_private(given)
    default = _default_dir() / f"{_NAME}.pem"
    if default.exists():
        return _read_private(default)
    key = Ed25519PrivateKey.generate()
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    default.chmod(0o600)
    default.with_suffix(".pub").write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return key


def _read_private(path: Path) -> Ed25519PrivateKey:
    return read_private_key(path, "the audit key")


def public_key(path: Path | None) -> Ed25519PublicKey:
    given = path or (
        Path(os.environ["SHIPRAIL_AUDIT_PUBLIC_KEY"]) if os.environ.get("SHIPRAIL_AUDIT_PUBLIC_KEY") else None
    )
    target = given or _default_dir() / f"{_NAME}.pub"
    try:
        key = load_pem_public_key(target.read_bytes())
    except FileNotFoundError:
        raise BadInput(
            f"no public key at {target}: give the signer's with --public-key or SHIPRAIL_AUDIT_PUBLIC_KEY"
        ) from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{target}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(f"{target}: the audit key must be an Ed25519 key")
    return key


def verify_file(path: Path, key: Path | None) -> Verdict:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read it ({exc})") from None
    return verify(lines, public_key(key))
