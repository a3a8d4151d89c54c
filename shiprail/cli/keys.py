"""`shiprail keys new IDENTITY`: a signing key for control requests, and its public half for plans.

The private key is `$SHIPRAIL_SIGNING_KEY` (a PEM file), else `signing-ed25519.pem` in the
user's config directory. Every `approve`, `pause`, `resume`, `abort` and `override`, and every
train command that changes a train, is signed with it when it exists; a rollout or train with
`spec.access` refuses unsigned requests.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated, TypeVar

import platformdirs
import typer

from shiprail.cli._console import out
from shiprail.errors import BadInput
from shiprail.plan.models import RolloutPlan
from shiprail.plan.train import ReleaseTrain

app = typer.Typer(help="Signing keys for control requests (plans' `spec.access`).", no_args_is_help=True)


def _default_path() -> Path:
    return Path(platformdirs.user_config_dir("shiprail")) / "signing-ed25519.pem"


D = TypeVar("D", RolloutPlan, ReleaseTrain)


def with_keyring(document: D, source: str) -> D:
    """The plan or train about to start, with `$SHIPRAIL_KEYRING`'s keys and groups merged
    into its access; refused when someone it names could never sign (no key, no group)."""
    from shiprail.plan.access import Access
    from shiprail.plan.loader import load_keyring

    if document.spec.access_rules() is None:
        return document
    given = os.environ.get("SHIPRAIL_KEYRING")
    if given:
        keyring = load_keyring(given)
        access = (document.spec.access or Access()).with_keyring(keyring)
        document = document.model_copy(update={"spec": document.spec.model_copy(update={"access": access})})
    rules = document.spec.access_rules()
    problems = rules.unresolved() if rules is not None else []
    if problems:
        where = f"{source} and {given}" if given else f"{source} (no $SHIPRAIL_KEYRING set)"
        raise BadInput(
            f"{where}: spec.{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return document


def signing_key() -> bytes | None:
    """The raw Ed25519 private key to sign with, or None when there is none."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from shiprail.keyfiles import read_private_key

    given = os.environ.get("SHIPRAIL_SIGNING_KEY")
    path = Path(given) if given else _default_path()
    if not path.exists():
        if given:
            raise BadInput(f"SHIPRAIL_SIGNING_KEY: no such file {path}")
        return None
    raw: bytes = read_private_key(path, "a signing key").private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return raw


def public_line(identity: str, private: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = (
        Ed25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    return f"{identity}: {base64.b64encode(public).decode()}"


@app.command("new")
def new(
    identity: Annotated[
        str, typer.Argument(help="who the key is for, as plans name them (e.g. alice@example.com)")
    ],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="where to write the private key (default: the config directory)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing key")] = False,
) -> None:
    """Make a signing key; print the line to put under `spec.access.keys`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    path = out_file or _default_path()
    if path.exists() and not force:
        raise BadInput(f"{path} exists; pass --force to replace it (anything signed by it stops verifying)")
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    out.print(f"private key written to {path} (keep it; use it with SHIPRAIL_SIGNING_KEY={path})")
    out.print("add to the plan under spec.access.keys:")
    out.print(
        f"  {public_line(identity, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))}",
        highlight=False,
    )
