"""Signed control requests, judged by the pure check the update validators call."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import ValidationError

from shiprail.authz import refusal, sign
from shiprail.plan.access import Access
from shiprail.workflows.inputs import ControlRequest

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _key() -> tuple[bytes, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    return private, public


ALICE, BOB, MALLORY = _key(), _key(), _key()
ACCESS = Access(
    approvers=["group:release"],
    operators=["bob"],
    groups={"release": ["alice"]},
    keys={"alice": ALICE[1], "bob": BOB[1]},
)


def _signed(
    who: str, key: bytes, action: str = "approve", rollout: str = "r1", **fields: str
) -> ControlRequest:
    return sign(key, rollout, action, ControlRequest(actor=who, **fields), NOW)


def test_the_right_person_with_the_right_key_is_let_through() -> None:
    assert refusal(ACCESS, "r1", "approve", _signed("alice", ALICE[0]), NOW, set()) is None
    assert refusal(ACCESS, "r1", "abort", _signed("bob", BOB[0], "abort", reason="bad"), NOW, set()) is None


def test_unsigned_requests_are_refused() -> None:
    why = refusal(ACCESS, "r1", "approve", ControlRequest(actor="alice"), NOW, set())
    assert why is not None and "must be signed" in why and "approvers" in why


def test_roles_are_kept_apart() -> None:
    why = refusal(ACCESS, "r1", "pause", _signed("alice", ALICE[0], "pause"), NOW, set())
    assert why == "'alice' is not one of this rollout's operators"
    why = refusal(ACCESS, "r1", "approve", _signed("bob", BOB[0]), NOW, set())
    assert why == "'bob' is not one of this rollout's approvers"


def test_a_claimed_identity_without_its_key_is_a_forgery() -> None:
    forged = _signed("alice", MALLORY[0])
    assert "the signature was not made with alice's key" in str(
        refusal(ACCESS, "r1", "approve", forged, NOW, set())
    )


def test_a_signed_request_cannot_be_changed_or_moved() -> None:
    signed = _signed("bob", BOB[0], "abort", reason="bad canary")
    for changed, action, rollout in (
        (signed.model_copy(update={"reason": "whatever"}), "abort", "r1"),
        (signed.model_copy(update={"service": "payments"}), "abort", "r1"),
        (signed, "pause", "r1"),  # the same signature for another action
        (signed, "abort", "r2"),  # or another rollout
    ):
        assert "the signature was not made with" in str(refusal(ACCESS, rollout, action, changed, NOW, set()))


def test_stale_and_replayed_requests_are_refused() -> None:
    signed = _signed("alice", ALICE[0])
    assert "more than 5 minutes from now" in str(
        refusal(ACCESS, "r1", "approve", signed, NOW + timedelta(minutes=6), set())
    )
    assert "already used (a replay)" in str(refusal(ACCESS, "r1", "approve", signed, NOW, {signed.nonce}))


@pytest.mark.parametrize(
    ("access", "message"),
    [
        ({"approvers": ["carol"], "keys": {}}, "'carol' has no key"),
        ({"approvers": ["group:ops"], "keys": {}}, "group:ops names no group"),
        ({"operators": ["a"], "keys": {"a": "bm90IDMyIGJ5dGVz"}}, "32 bytes"),
        ({"keys": {}}, "neither approvers nor operators"),
        ({"operators": ["group:g"], "groups": {"g": ["x"]}, "keys": {}}, "'x' has no key"),
    ],
)
def test_an_access_block_that_cannot_work_is_refused(access: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Access.model_validate(access)
