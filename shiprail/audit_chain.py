"""A tamper-evident audit log: each record carries the SHA-256 of the record before it
(canonical JSON: sorted keys, no spaces, UTF-8), and the file ends in a head signed with
Ed25519 that states the record count and the last record's hash. Without a signed head a
truncated file would still be a valid chain; with it, any edit, insertion, deletion,
reordering or truncation is found, and the first bad record is named.

Pure functions over lines and keys: the CLI reads the keys and writes the files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    """The bytes a record is hashed and signed over (RFC 8785 style for JSON data)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def chain(subject: str, entries: list[dict[str, Any]], key: Ed25519PrivateKey) -> list[str]:
    """JSON lines: each entry with `seq` and `prev`, then the signed head."""
    lines, previous = [], GENESIS
    for seq, entry in enumerate(entries):
        record = {**entry, "seq": seq, "prev": previous}
        lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
        previous = digest(record)
    claim = {"subject": subject, "count": len(entries), "last": previous}
    signature = base64.b64encode(key.sign(canonical(claim))).decode()
    head = {**claim, "alg": "ed25519", "key_id": key_id(key.public_key()), "signature": signature}
    lines.append(json.dumps({"head": head}, sort_keys=True))
    return lines


@dataclass(frozen=True)
class Verdict:
    intact: bool
    records: int
    message: str
    bad_record: int | None = None  # 0-based seq of the first bad record
    line: int | None = None


def verify(lines: list[str], public: Ed25519PublicKey) -> Verdict:
    """Whether the chain and its head are intact under `public`; the first problem if not."""
    body = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not body:
        return Verdict(False, 0, "the file is empty: no records and no signed head")
    records: list[tuple[int, dict[str, Any]]] = []
    head: dict[str, Any] | None = None
    for n, line in body:
        try:
            value = json.loads(line)
        except ValueError:
            return Verdict(False, len(records), f"line {n} is not JSON", len(records), n)
        if not isinstance(value, dict):
            return Verdict(False, len(records), f"line {n} is not a record", len(records), n)
        if "head" in value:
            if n != body[-1][0]:
                return Verdict(
                    False,
                    len(records),
                    f"line {n}: a signed head before the end of the file",
                    len(records),
                    n,
                )
            head = value["head"]
        else:
            records.append((n, value))
    previous = GENESIS
    for seq, (n, record) in enumerate(records):
        if record.get("seq") != seq:
            return Verdict(
                False,
                len(records),
                f"record {seq} (line {n}) has seq {record.get('seq')!r}: records were"
                " inserted, removed or reordered",
                seq,
                n,
            )
        if record.get("prev") != previous:
            if seq == 0:
                return Verdict(
                    False, len(records), f"record 0 (line {n}) is not the first record of a chain", 0, n
                )
            # The sequence numbers are right, so the record before no longer hashes to what
            # this one says it followed: it was edited.
            before = records[seq - 1][0]
            return Verdict(
                False,
                len(records),
                f"record {seq - 1} (line {before}) was edited: record {seq} (line {n}) no longer follows it",
                seq - 1,
                before,
            )
        previous = digest(record)
    if head is None:
        return Verdict(False, len(records), "no signed head at the end: the file was truncated", len(records))
    if not isinstance(head, dict):
        return Verdict(False, len(records), "the head is not a record", len(records), body[-1][0])
    claim = {k: head.get(k) for k in ("subject", "count", "last")}
    try:
        public.verify(base64.b64decode(str(head.get("signature", ""))), canonical(claim))
    except (InvalidSignature, ValueError):
        return Verdict(
            False,
            len(records),
            "the head's signature does not verify with this key: the head was"
            " edited or signed with another key",
            None,
            body[-1][0],
        )
    if head.get("count") != len(records):
        return Verdict(
            False,
            len(records),
            f"the signed head counts {head.get('count')} records, the file has"
            f" {len(records)}: records were removed or added at the end",
            len(records),
            body[-1][0],
        )
    if head.get("last") != previous:
        last = len(records) - 1
        return Verdict(
            False,
            len(records),
            f"record {last} (line {records[-1][0] if records else 0}) is not the"
            " record the head signed: it was edited",
            last,
            records[-1][0] if records else None,
        )
    return Verdict(
        True, len(records), f"intact: {len(records)} records, signed head verified (key {head.get('key_id')})"
    )
