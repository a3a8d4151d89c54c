"""Signed control requests: who asked, proven by an Ed25519 signature. Pure, no I/O.

A request is signed over the canonical JSON of what it does (the rollout or train it is
for, the action, and every field of the request: actor, reason, the boarded plan, ...) and
when (`issued_at`, a nonce). The validator refuses a request that is unsigned, signed by a
key other than the actor's, from an actor without the role, older or newer than
`FRESHNESS`, or with a nonce the rollout or train has already accepted, so a captured
request cannot be sent again or changed.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta
from typing import TypeVar

# Imported here, not where used: the workflow sandbox must not import a C extension late.
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shiprail.plan.access import Access
from shiprail.workflows.inputs import Signed

FRESHNESS = timedelta(minutes=5)
ROLE = {"approve": "approvers"}  # everything else is the operators'


R = TypeVar("R", bound=Signed)


def message(target: str, action: str, request: Signed) -> bytes:
    """What is signed: the workflow id the request is for, the action and the whole request
    but its signature, as canonical JSON."""
    signed = {
        "target": target,
        "action": action,
        "request": request.model_dump(mode="json", exclude={"signature"}),
    }
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(private_key_bytes: bytes, target: str, action: str, request: R, now: datetime) -> R:
    """The request with a fresh nonce, the time and the actor's signature."""
    key = Ed25519PrivateKey.from_private_bytes(private_key_bytes)
    ready = request.model_copy(
        update={"nonce": base64.urlsafe_b64encode(os.urandom(16)).decode(), "issued_at": now}
    )
    # Signed as the worker will see it: after the trip through JSON that Temporal gives it.
    ready = type(ready).model_validate_json(ready.model_dump_json())
    signature = key.sign(message(target, action, ready))
    return ready.model_copy(update={"signature": base64.b64encode(signature).decode()})


def refusal(
    access: Access,
    target: str,
    action: str,
    request: Signed,
    now: datetime,
    seen: set[str],
    what: str = "rollout",
) -> str | None:
    """Why `request` may not `action` the rollout or train (`what`) whose workflow id is
    `target`, or None when it may."""
    role = ROLE.get(action, "operators")
    source = "plan" if what == "rollout" else "file"
    if not getattr(access, role):
        return None  # a role nobody is named for is open (DESIGN §2)
    if not request.signature or not request.nonce or request.issued_at is None:
        return f"{action} must be signed: this {what}'s {source} names its {role} (set SHIPRAIL_SIGNING_KEY)"
    if not access.holds(request.actor, role):
        return f"{request.actor!r} is not one of this {what}'s {role}"
    key = access.keys.get(request.actor)
    if key is None:
        return f"{request.actor!r} has no key in this {what}'s {source}"
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(
            base64.b64decode(request.signature), message(target, action, request)
        )
    except (InvalidSignature, ValueError):
        return f"the signature was not made with {request.actor}'s key for this {action} of this {what}"
    if abs(now - request.issued_at) > FRESHNESS:
        signed = f"{request.issued_at:%Y-%m-%d %H:%M:%S} UTC"
        return f"the request was signed at {signed}, more than {FRESHNESS.seconds // 60} minutes from now"
    if request.nonce in seen:
        return "this signed request was already used (a replay)"
    return None
