"""The flagd actuator: one flag of a flagd flag-definition file, rewritten atomically.

At w % the flag's targeting is flagd's `fractional` operation over an explicit bucketing
expression, `{"cat": [<bucket_key>, ":", {"var": "targetingKey"}]}`: it leaves the flag key
out, so every flag of a rollout sharing the bucket key puts the same users in, and its total
weight is fixed (10,000, a hundredth of a percent each), so raising the percentage only adds
users. The flag always has an explicit `off` variant as its default: a `DISABLED` flag would
return each caller's code default instead, which no rollout can promise anything about.

The file is read, changed and swapped in with a rename under an exclusive lock, so services
sharing one file never lose each other's changes and flagd never reads half a file. The
flag's state as read before the first change (or its absence) is what a restore puts back,
exactly; the rest of the file is left as it is then.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shiprail.actuators.base import ExposureChange, PermanentActuatorError
from shiprail.plan.actuators import FlagdActuator as FlagdConfig
from shiprail.status import Exposure

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
TOTAL_WEIGHT = 10_000
ON, OFF = "on", "off"


def bucketing(bucket_key: str) -> dict[str, Any]:
    return {"cat": [bucket_key, ":", {"var": "targetingKey"}]}


def flag_at(config: FlagdConfig, weight: float, revision: str) -> dict[str, Any]:
    """The flag serving `on` to `weight` % of targeting keys."""
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {ON: config.on, OFF: config.off},
        "defaultVariant": ON if weight >= 100 else OFF,
        "metadata": {"shiprailRevision": revision, "shiprailWeight": weight},
    }
    if 0 < weight < 100:
        on = round(weight * TOTAL_WEIGHT / 100)
        flag["targeting"] = {
            "fractional": [bucketing(str(config.bucket_key)), [ON, on], [OFF, TOTAL_WEIGHT - on]]
        }
    return flag


def weight_of(flag: dict[str, Any] | None, config: FlagdConfig) -> float:
    """The share of keys a flag serves `on`, for flags in the form shiprail writes or a
    plain on/off flag; other targeting reads as 0 (its state is still kept exactly)."""
    if not flag or flag.get("state") != "ENABLED":
        return 0.0
    variants = flag.get("variants", {})
    default = variants.get(flag.get("defaultVariant"))
    targeting = flag.get("targeting") or {}
    fractional = targeting.get("fractional") if isinstance(targeting, dict) else None
    if isinstance(fractional, list):
        weights = {str(f[0]): f[1] for f in fractional[1:] if isinstance(f, list) and len(f) == 2}
        total = sum(w for w in weights.values() if isinstance(w, int))
        on = sum(w for v, w in weights.items() if isinstance(w, int) and variants.get(v) == config.on)
        return round(100 * on / total, 4) if total else 0.0
    if targeting:
        return 0.0
    return 100.0 if default == config.on else 0.0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class FlagdActuator:
    def __init__(self, config: FlagdConfig) -> None:
        self.config = config
        self.path = Path(config.path).expanduser()

    def _load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PermanentActuatorError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise PermanentActuatorError(f"{self.path} is not JSON: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
            raise PermanentActuatorError(
                f"{self.path} is not a flagd flag-definition file (no 'flags' object)"
            )
        return document

    def _write(self, document: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise PermanentActuatorError(f"cannot write {self.path}: {exc.strerror}") from None

    def _update(self, flag: dict[str, Any] | None) -> None:
        """Set (or, with None, remove) this flag, leaving the rest of the file alone."""
        with _locked(self.path):
            document = self._load() or {"$schema": SCHEMA, "flags": {}}
            flags = dict(document.get("flags", {}))
            if flag is None:
                flags.pop(self.config.flag, None)
            else:
                flags[self.config.flag] = flag
            self._write({**document, "flags": flags})

    async def read(self, service: str) -> Exposure:
        document = await asyncio.to_thread(self._load)
        flag = (document or {}).get("flags", {}).get(self.config.flag)
        weight = weight_of(flag, self.config)
        return Exposure(
            service=service,
            stable_version=f"{self.config.flag}={json.dumps(self.config.off)}",
            canary_version=f"{self.config.flag}={json.dumps(self.config.on)}" if weight else None,
            weight=weight,
            state={"flag": flag},
        )

    async def apply(self, change: ExposureChange) -> None:
        await asyncio.to_thread(self._update, flag_at(self.config, change.weight, change.idempotency_key))

    async def restore(self, change: ExposureChange, original: Exposure) -> None:
        state = original.state or {}
        if "flag" not in state:
            await self.apply(change)
            return
        await asyncio.to_thread(self._update, state["flag"])

    async def served(self, change: ExposureChange) -> bool | None:
        """Nobody can tell from here when every flagd or in-process provider has read the new
        file; the flag's metadata carries the change's revision for those who can look, and
        the step waits the plan's `propagation`."""
        return None
