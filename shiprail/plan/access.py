"""`spec.access`: who may approve and who may operate a rollout, and the keys that prove it.

Temporal's client identity is a string any caller chooses, so a name alone proves nothing.
With `access`, every approve, pause, resume, abort and override must be signed with the
Ed25519 key of an identity listed here; the rollout's update validators check the
signature, the role, the freshness and that the request was not seen before. Public keys
are not secrets: they travel with the plan into history, and that is what lets the
validators check signatures deterministically, with no I/O.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field, model_validator

GROUP = "group:"


class Access(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvers: list[str] = Field(default_factory=list, description="identities or group:NAME who may approve")
    operators: list[str] = Field(
        default_factory=list, description="identities or group:NAME who may pause, resume, abort and override"
    )
    groups: dict[str, list[str]] = Field(default_factory=dict)
    keys: dict[str, str] = Field(
        default_factory=dict, description="identity → base64 Ed25519 public key (`shiprail keys new`)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Access:
        for identity, key in self.keys.items():
            try:
                raw = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"keys.{identity}: not base64") from None
            if len(raw) != 32:
                raise ValueError(f"keys.{identity}: an Ed25519 public key is 32 bytes, not {len(raw)}")
        for role in ("approvers", "operators"):
            for entry in getattr(self, role):
                if entry.startswith(GROUP):
                    if entry[len(GROUP) :] not in self.groups:
                        raise ValueError(f"{role}: {entry} names no group in `groups`")
                elif entry not in self.keys:
                    raise ValueError(f"{role}: {entry!r} has no key in `keys`")
        for group, members in self.groups.items():
            if missing := [m for m in members if m not in self.keys]:
                raise ValueError(
                    f"groups.{group}: {', '.join(map(repr, missing))} ha{'s' if len(missing) == 1 else 've'} no key in `keys`"
                )
        if not self.approvers and not self.operators:
            raise ValueError("access names neither approvers nor operators")
        return self

    def holds(self, identity: str, role: str) -> bool:
        """Whether `identity` is in `role` ("approvers" or "operators"), directly or by group."""
        for entry in getattr(self, role):
            if entry == identity or (
                entry.startswith(GROUP) and identity in self.groups.get(entry[len(GROUP) :], [])
            ):
                return True
        return False
