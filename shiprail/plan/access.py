"""Who may approve and who may operate a rollout or train, and the keys that prove it.

Plans and trains name `approvers` and `operators` (identities or `group:NAME`) in their
spec, or under `spec.access` with the `groups` and the public `keys`; a keyring
(`$SHIPRAIL_KEYRING`) may supply keys and groups for a whole organisation, merged in when a
rollout starts or a train is created.

Temporal's client identity is a string any caller chooses, so a name alone proves nothing.
Once a role names anyone, every request of that role must be signed with the Ed25519 key of
one of them; the update validators check the signature, the role, the freshness and that the
request was not seen before. A role left empty stays open to anyone who can reach the
namespace. Public keys are not secrets: they travel with the plan into history, and that is
what lets the validators check signatures deterministically, with no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

GROUP = "group:"


def _public_key(key: str) -> str:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 (`shiprail keys new` prints the line to use)") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return key


PublicKey = Annotated[str, AfterValidator(_public_key)]


class Access(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvers: list[str] = Field(default_factory=list, description="identities or group:NAME who may approve")
    operators: list[str] = Field(
        default_factory=list, description="identities or group:NAME who may pause, resume, abort and override"
    )
    groups: dict[str, list[str]] = Field(default_factory=dict)
    keys: dict[str, PublicKey] = Field(
        default_factory=dict, description="identity → base64 Ed25519 public key (`shiprail keys new`)"
    )

    def unresolved(self) -> list[str]:
        """What keeps someone named from ever being let through: an identity without a key,
        a group nobody defined. Keys may still come from a keyring, so a plan file is not
        judged by this; a rollout or train about to start is."""
        problems = []
        for role in ("approvers", "operators"):
            for entry in getattr(self, role):
                if entry.startswith(GROUP):
                    if entry[len(GROUP) :] not in self.groups:
                        problems.append(f"{role}: {entry} names no group (in `access.groups` or the keyring)")
                elif entry not in self.keys:
                    problems.append(f"{role}: {entry!r} has no public key (in `access.keys` or the keyring)")
        for group, members in self.groups.items():
            for member in members:
                if member not in self.keys:
                    problems.append(
                        f"groups.{group}: {member!r} has no public key (in `access.keys` or the keyring)"
                    )
        return problems

    def with_keyring(self, keyring: Keyring) -> Access:
        """The keyring's keys and groups under this access's own (which win where both name one)."""
        return self.model_copy(
            update={"keys": {**keyring.keys, **self.keys}, "groups": {**keyring.groups, **self.groups}}
        )

    def holds(self, identity: str, role: str) -> bool:
        """Whether `identity` is in `role` ("approvers" or "operators"), directly or by group."""
        for entry in getattr(self, role):
            if entry == identity or (
                entry.startswith(GROUP) and identity in self.groups.get(entry[len(GROUP) :], [])
            ):
                return True
        return False


class Keyring(BaseModel):
    """`$SHIPRAIL_KEYRING` (`kind: Keyring`): public keys and groups for every plan and train."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["shiprail/v1"] = Field("shiprail/v1", alias="apiVersion")
    kind: Literal["Keyring"] = "Keyring"
    keys: dict[str, PublicKey] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict)


def with_roles(access: Access | None, approvers: list[str], operators: list[str]) -> Access | None:
    """The access of a spec that names `approvers` and `operators` itself (DESIGN §2), with
    those of its `access` block; None when nobody is named anywhere."""
    if access is None and not approvers and not operators:
        return None
    base = access or Access()
    merged = base.model_copy(
        update={
            "approvers": list(dict.fromkeys([*base.approvers, *approvers])),
            "operators": list(dict.fromkeys([*base.operators, *operators])),
        }
    )
    if not merged.approvers and not merged.operators:
        raise ValueError("access names neither approvers nor operators")
    return merged


class Roles(BaseModel):
    """The fields plans and trains name their people with (DESIGN §2)."""

    approvers: list[str] = Field(
        default_factory=list, description="who may approve (identities or group:NAME); empty = anyone"
    )
    operators: list[str] = Field(
        default_factory=list,
        description="who may pause, resume, abort and override a rollout, and change a train; empty = anyone",
    )
    access: Access | None = Field(None, description="roles, groups and the public keys that prove them")

    @model_validator(mode="after")
    def _roles_name_someone(self) -> Roles:
        with_roles(self.access, self.approvers, self.operators)
        return self

    def access_rules(self) -> Access | None:
        """Who may do what: the roles named here and under `access`, with its keys."""
        return with_roles(self.access, self.approvers, self.operators)
