"""Reading the Ed25519 private keys shiprail signs with (audit heads, control requests)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from shiprail.errors import BadInput


def read_private_key(path: Path, purpose: str) -> Ed25519PrivateKey:
    """The PEM key at `path`, or a BadInput naming the file and what the key is for."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BadInput(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{path}: {purpose} must be an Ed25519 key")
    return key
