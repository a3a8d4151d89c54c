"""Signed control requests: who asked, proven by an Ed25519 signature. Pure, no I/O.

A request is signed over the canonical JSON of what it does (rollout, action, actor,
service, reason) and when (`issued_at`, a nonce). The validator refuses a request that is
unsigned, signed by a key other than the actor's, from an actor without the role, older or
newer than `FRESHNESS`, or with a nonce the rollout has already accepted, so a captured
request cannot be sent again.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta

# Imported here, not where used: the workflow sandbox must not import a C extension late.
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shiprail.plan.access import Access
from shiprail.workflows.inputs import ControlRequest

FRESHNESS = timedelta(minutes=5)
ROLE = {"approve": "approvers"}  # everything else is the operators'


def message(rollout_id: str, action: str, request: ControlRequest) -> bytes:
    signed = {
        "rollout": rollout_id,
        "action": action,
        "actor": request.actor,
        "service": request.service,
        "reason": request.reason,
        "nonce": request.nonce,
        "issued_at": request.issued_at.isoformat() if request.issued_at else None,
    }
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(
    private_key_bytes: bytes, rollout_id: str, action: str, request: ControlRequest, now: datetime
) -> ControlRequest:
    """The request with a fresh nonce, the time and the actor's signature."""
    key = Ed25519PrivateKey.from_private_bytes(private_key_bytes)
    ready = request.model_copy(
        update={"nonce": base64.urlsafe_b64encode(os.urandom(16)).decode(), "issued_at": now}
    )
    signature = key.sign(message(rollout_id, action, ready))
    return ready.model_copy(update={"signature": base64.b64encode(signature).decode()})


def refusal(
    access: Access, rollout_id: str, action: str, request: ControlRequest, now: datetime, seen: set[str]
) -> str | None:
    """Why `request` may not `action` this rollout, or None when it may."""
    role = ROLE.get(action, "operators")
    if not request.signature or not request.nonce or request.issued_at is None:
        return f"{action} must be signed: this rollout's plan names its {role} (set SHIPRAIL_SIGNING_KEY)"
    if not access.holds(request.actor, role):
        return f"{request.actor!r} is not one of this rollout's {role}"
    key = access.keys.get(request.actor)
    if key is None:
        return f"{request.actor!r} has no key in this rollout's plan"
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(
            base64.b64decode(request.signature), message(rollout_id, action, request)
        )
    except (InvalidSignature, ValueError):
        return f"the signature was not made with {request.actor}'s key for this {action} of this rollout"
    if abs(now - request.issued_at) > FRESHNESS:
        signed = f"{request.issued_at:%Y-%m-%d %H:%M:%S} UTC"
        return f"the request was signed at {signed}, more than {FRESHNESS.seconds // 60} minutes from now"
    if request.nonce in seen:
        return "this signed request was already used (a replay)"
    return None
