"""The HAProxy actuator: stable/canary server weights through the runtime API.

HAProxy's runtime API answers one command per connection on an admin-level stats socket
(Unix or TCP); `set weight` answers nothing on success, `get weight` answers
`"<current> (initial <configured>)"`. A canary at w % is `canary = w`, `stable = 100 − w`
out of 100 (HAProxy takes 0–256), and every change is read back before it counts as
applied. The weights read before the first change are what a restore puts back, exactly.

A reload resets weights to the configuration unless the server-state file is used: a
read that finds both servers back at their `initial` weights, where shiprail had set
others, says so instead of passing quietly for a drift.
"""

from __future__ import annotations

import asyncio
import re

from shiprail.actuators.base import ActuatorError, ExposureChange, PermanentActuatorError
from shiprail.plan.actuators import HaproxyActuator as HaproxyConfig
from shiprail.status import Exposure

_SCALE = 100
_WEIGHT = re.compile(r"^(\d+) \(initial (\d+)\)$")


class HaproxyActuator:
    def __init__(self, config: HaproxyConfig) -> None:
        self.config = config

    @property
    def _where(self) -> str:
        return self.config.socket or str(self.config.address)

    async def _command(self, command: str) -> str:
        """One runtime-API command on its own connection; its answer, stripped."""
        timeout = self.config.timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                if self.config.socket is not None:
                    reader, writer = await asyncio.open_unix_connection(self.config.socket)
                else:
                    host, _, port = str(self.config.address).rpartition(":")
                    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
                try:
                    writer.write(command.encode() + b"\n")
                    await writer.drain()
                    answer = (await reader.read()).decode("utf-8", "replace").strip()
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            raise ActuatorError(
                f"HAProxy runtime API at {self._where}: {type(exc).__name__}: {exc}"
            ) from None
        lowered = answer.lower()
        if "permission denied" in lowered:
            raise PermanentActuatorError(
                f"HAProxy at {self._where} refused {command.split()[0]} {command.split()[1]}: the stats socket"
                " needs `level admin` to change weights"
            )
        if lowered.startswith("no such") or "unknown command" in lowered or "require" in lowered:
            raise PermanentActuatorError(f"HAProxy at {self._where}: {command!r}: {answer}")
        return answer

    async def _get(self, server: str) -> tuple[int, int]:
        answer = await self._command(f"get weight {self.config.backend}/{server}")
        match = _WEIGHT.match(answer)
        if match is None:
            raise PermanentActuatorError(
                f"HAProxy at {self._where}: unexpected answer to get weight: {answer!r}"
            )
        return int(match.group(1)), int(match.group(2))

    async def _set(self, server: str, weight: int) -> None:
        answer = await self._command(f"set weight {self.config.backend}/{server} {weight}")
        if answer:
            raise PermanentActuatorError(f"HAProxy at {self._where}: set weight {server} {weight}: {answer}")

    async def read(self, service: str) -> Exposure:
        (stable, stable_initial), (canary, canary_initial) = await asyncio.gather(
            self._get(self.config.stable), self._get(self.config.canary)
        )
        total = stable + canary
        return Exposure(
            service=service,
            stable_version=self.config.stable_version or f"{self.config.backend}/{self.config.stable}",
            canary_version=f"{self.config.backend}/{self.config.canary}" if canary else None,
            weight=round(100 * canary / total, 4) if total else 0.0,
            state={
                "stable": stable,
                "canary": canary,
                "stable_initial": stable_initial,
                "canary_initial": canary_initial,
            },
        )

    async def _set_pair(self, stable: int, canary: int) -> None:
        # Canary down first when shrinking it, stable down first when growing it: the sum
        # never drops to zero in between, so the backend never refuses traffic.
        order = [(self.config.stable, stable), (self.config.canary, canary)]
        current_canary, _ = await self._get(self.config.canary)
        if canary < current_canary:
            order.reverse()
        for server, weight in order:
            await self._set(server, weight)
        found = (await self._get(self.config.stable))[0], (await self._get(self.config.canary))[0]
        if found != (stable, canary):
            raise ActuatorError(
                f"HAProxy at {self._where}: set {self.config.backend} to stable {stable}/canary {canary},"
                f" read back {found[0]}/{found[1]}"
            )

    async def apply(self, change: ExposureChange) -> None:
        canary = round(change.weight * _SCALE / 100)
        await self._set_pair(_SCALE - canary, canary)

    async def restore(self, change: ExposureChange, original: Exposure) -> None:
        state = original.state or {}
        if "stable" not in state or "canary" not in state:
            await self.apply(change)
            return
        await self._set_pair(int(state["stable"]), int(state["canary"]))

    async def served(self, change: ExposureChange) -> bool | None:
        return True  # `set weight` takes effect at once, and every change is read back


def reset_by_reload(exposure: Exposure, expected_weight: float) -> bool:
    """Whether a read shows the configuration's weights where shiprail had set others:
    what a reload without a server-state file does."""
    state = exposure.state or {}
    at_initial = state.get("stable") == state.get("stable_initial") and state.get("canary") == state.get(
        "canary_initial"
    )
    return bool(state) and at_initial and abs(exposure.weight - expected_weight) > 0.5
