"""Signed control requests, judged by the pure check the update validators call."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import ValidationError

from shiprail.authz import refusal, sign
from shiprail.plan.access import Access, Keyring, with_roles
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
        ({"operators": ["a"], "keys": {"a": "bm90IDMyIGJ5dGVz"}}, "32 bytes"),
        ({"operators": ["a"], "keys": {"a": "not base64!"}}, "not base64"),
    ],
)
def test_a_key_that_is_not_a_key_is_refused(access: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Access.model_validate(access)


@pytest.mark.parametrize(
    ("access", "message"),
    [
        ({"approvers": ["carol"]}, "approvers: 'carol' has no public key"),
        ({"approvers": ["group:ops"]}, "approvers: group:ops names no group"),
        ({"operators": ["group:g"], "groups": {"g": ["x"]}}, "groups.g: 'x' has no public key"),
    ],
)
def test_someone_who_could_never_sign_is_found_before_a_start(
    access: dict[str, object], message: str
) -> None:
    """Keys may come from a keyring, so a plan file naming people without keys is valid;
    what is still missing once the keyring is merged is refused at start (`with_keyring`)."""
    problems = Access.model_validate(access).unresolved()
    assert problems and message in problems[0], problems


def test_naming_nobody_is_refused() -> None:
    with pytest.raises(ValueError, match="neither approvers nor operators"):
        with_roles(Access(keys={"alice": ALICE[1]}), [], [])
    assert with_roles(None, [], []) is None


def test_a_role_nobody_is_named_for_stays_open() -> None:
    """DESIGN §2: `approvers` empty = anyone with access may approve."""
    operators_only = Access(operators=["bob"], keys={"bob": BOB[1]})
    assert refusal(operators_only, "r1", "approve", ControlRequest(actor="anyone"), NOW, set()) is None
    assert "must be signed" in str(
        refusal(operators_only, "r1", "abort", ControlRequest(actor="bob"), NOW, set())
    )


def test_the_keyring_supplies_keys_and_groups_the_plan_does_not() -> None:
    keyring = Keyring(keys={"alice": ALICE[1], "bob": MALLORY[1]}, groups={"release": ["alice"]})
    merged = Access(approvers=["group:release"], operators=["bob"], keys={"bob": BOB[1]}).with_keyring(
        keyring
    )
    assert merged.unresolved() == []
    assert merged.keys == {"alice": ALICE[1], "bob": BOB[1]}  # the plan's own key wins
    assert refusal(merged, "r1", "approve", _signed("alice", ALICE[0]), NOW, set()) is None
