"""The tamper-evident audit export: a hash chain with a signed head, and a verifier that
finds any edit, insertion, deletion, reordering or truncation and names the first bad record."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shiprail.audit_chain import chain, verify

KEY = Ed25519PrivateKey.generate()
ENTRIES = [
    {"time": f"2026-12-02T10:0{n}:00Z", "kind": "gate", "message": f"entry {n}", "actor": None}
    for n in range(6)
]


def exported() -> list[str]:
    return chain("rollout-1", ENTRIES, KEY)


def test_an_untouched_export_verifies() -> None:
    verdict = verify(exported(), KEY.public_key())
    assert verdict.intact and verdict.records == 6 and "signed head verified" in verdict.message


def _edit(lines: list[str], index: int, **changes: object) -> list[str]:
    record = json.loads(lines[index])
    record.update(changes)
    return [*lines[:index], json.dumps(record), *lines[index + 1 :]]


@pytest.mark.parametrize(
    ("tamper", "bad", "says"),
    [
        (lambda ls: _edit(ls, 2, message="nothing happened"), 2, "record 2 (line 3) was edited"),
        (lambda ls: [*ls[:3], ls[1], *ls[3:]], 3, "has seq 1"),  # a record inserted again
        (lambda ls: [*ls[:2], *ls[3:]], 2, "has seq 3"),  # one deleted
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 1, "has seq 2"),  # two swapped
        (lambda ls: ls[:-1], 6, "truncated"),  # the head dropped
        (lambda ls: [*ls[:-2], ls[-1]], 5, "counts 6 records, the file has 5"),  # the last record dropped
        (lambda ls: _edit(ls, 5, message="edited last"), 5, "is not the record the head signed"),
    ],
    ids=["edit", "insert", "delete", "reorder", "truncate-head", "truncate-record", "edit-last"],
)
def test_every_kind_of_tampering_names_the_first_bad_record(tamper, bad, says) -> None:  # type: ignore[no-untyped-def]
    verdict = verify(tamper(exported()), KEY.public_key())
    assert not verdict.intact
    assert verdict.bad_record == bad, verdict.message
    assert says in verdict.message


def test_a_head_resigned_with_another_key_or_edited_does_not_verify() -> None:
    forged = chain(
        "rollout-1", [*ENTRIES, {"kind": "human", "message": "approved"}], Ed25519PrivateKey.generate()
    )
    assert "does not verify with this key" in verify(forged, KEY.public_key()).message
    lines = exported()
    head = json.loads(lines[-1])
    head["head"]["count"] = 5
    assert "does not verify" in verify([*lines[:-2], json.dumps(head)], KEY.public_key()).message


def test_an_empty_file_and_garbage_are_not_intact() -> None:
    assert "empty" in verify([], KEY.public_key()).message
    assert "not JSON" in verify(["{nope", *exported()], KEY.public_key()).message
