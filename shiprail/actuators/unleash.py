"""The Unleash actuator: one flag in one environment, through the Admin API.

shiprail adds one `flexibleRollout` strategy of its own (titled `shiprail`) with the
rollout's `groupId` (the shared bucket key) and stickiness, so Unleash's hash
(murmur3 of `groupId:stickinessValue`, `% 100 + 1 <= rollout`) puts the same users in
for every flag of the rollout, and only adds users as the percentage rises. While it
runs, the flag's other strategies are disabled (they would otherwise add their own users),
and the environment is switched on only after the strategy exists: an enabled environment
with no enabled strategy serves everyone.

What was read before the first change (whether the flag existed, the environment's
enabled state, every strategy as it was) is what a restore puts back: the others
re-enabled exactly as they were, shiprail's strategy deleted, and the environment switched
back, in an order that never serves anyone who was served neither before the rollout nor
during it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from shiprail.actuators.base import ActuatorError, ExposureChange, PermanentActuatorError
from shiprail.actuators.http import pooled_session, request_text
from shiprail.actuators.secrets import resolve
from shiprail.plan.actuators import UnleashActuator as UnleashConfig
from shiprail.status import Exposure

TITLE = "shiprail"
# The client-specification version current SDKs announce: Unleash keeps one cached answer
# per kind of client, and the propagation check must read the one SDKs get.
_CLIENT_SPEC = "6.1.0"
# What a strategy is, for putting one back: the fields Unleash accepts on a PUT.
_STRATEGY_FIELDS = (
    "name",
    "title",
    "constraints",
    "parameters",
    "variants",
    "segments",
    "disabled",
    "sortOrder",
)


def _rollout(weight: float) -> str:
    # Unleash buckets users into whole percents (1..100): a step between two rounds up.
    return str(min(100, math.ceil(weight - 1e-9))) if weight > 0 else "0"


class UnleashActuator:
    def __init__(self, config: UnleashConfig) -> None:
        self.config = config
        base = config.url.rstrip("/")
        self._feature_url = f"{base}/api/admin/projects/{config.project}/features/{config.feature}"
        self._env_url = f"{self._feature_url}/environments/{config.environment}"

    async def _call(self, method: str, url: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        headers = {
            "Authorization": resolve(self.config.token, what="unleash token"),
            "Accept": "application/json",
        }
        status, text = await request_text(method, url, headers, self.config.timeout, json=body)
        where = f"Unleash {method} {url.removeprefix(self.config.url.rstrip('/'))}"
        if status == 404 and missing_ok:
            return None
        if status >= 500 or status == 429:
            raise ActuatorError(f"{where}: HTTP {status}: {text[:200]}")
        if status in (401, 403):
            raise PermanentActuatorError(
                f"{where}: HTTP {status}: the token is not an admin token for this project"
            )
        if status >= 400:
            raise PermanentActuatorError(f"{where}: HTTP {status}: {text[:200]}")
        return json.loads(text) if text else None

    async def _state(self) -> dict[str, Any]:
        feature = await self._call("GET", self._feature_url, missing_ok=True)
        if feature is None:
            return {"exists": False, "enabled": False, "strategies": []}
        environment = next(
            (e for e in feature.get("environments", []) if e.get("name") == self.config.environment), None
        )
        if environment is None:
            raise PermanentActuatorError(
                f"Unleash feature {self.config.feature} has no environment {self.config.environment!r}"
            )
        strategies = await self._call("GET", f"{self._env_url}/strategies")
        return {"exists": True, "enabled": bool(environment.get("enabled")), "strategies": strategies}

    def _ours(self, strategies: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next(
            (s for s in strategies if s.get("title") == TITLE and s.get("name") == "flexibleRollout"), None
        )

    async def read(self, service: str) -> Exposure:
        state = await self._state()
        ours = self._ours(state["strategies"])
        if not state["enabled"]:
            weight = 0.0
        elif ours is not None and not ours.get("disabled"):
            weight = float(ours.get("parameters", {}).get("rollout", "100"))
        else:
            weight = 100.0 if self._serves_everyone(state["strategies"]) else 0.0
        return Exposure(
            service=service,
            stable_version=f"{self.config.feature}=off",
            canary_version=f"{self.config.feature}=on" if weight else None,
            weight=weight,
            state=state,
        )

    @staticmethod
    def _serves_everyone(strategies: list[dict[str, Any]]) -> bool:
        live = [s for s in strategies if not s.get("disabled")]
        if not live:
            return True  # Unleash: an enabled environment with no strategy is on for everyone
        return any(
            s.get("name") == "default"
            or (s.get("name") == "flexibleRollout" and s.get("parameters", {}).get("rollout", "100") == "100")
            for s in live
            if not s.get("constraints") and not s.get("segments")
        )

    def _strategy(self, weight: float) -> dict[str, Any]:
        return {
            "name": "flexibleRollout",
            "title": TITLE,
            "constraints": [],
            "parameters": {
                "rollout": _rollout(weight),
                "stickiness": self.config.stickiness,
                "groupId": str(self.config.bucket_key),
            },
        }

    async def apply(self, change: ExposureChange) -> None:
        state = await self._state()
        if not state["exists"]:
            await self._call(
                "POST",
                self._feature_url.rsplit("/", 1)[0],
                {"name": self.config.feature, "type": "release", "description": "rolled out by shiprail"},
            )
            state = await self._state()
        # Ours first, then the others off: a flag whose strategies are all disabled is
        # switched off by Unleash itself, and one with none at all would serve everyone.
        ours = self._ours(state["strategies"])
        if ours is None:
            await self._call("POST", f"{self._env_url}/strategies", self._strategy(change.weight))
        else:
            await self._put_strategy({**ours, **self._strategy(change.weight)}, disabled=False)
        for other in state["strategies"]:
            if other.get("title") != TITLE and not other.get("disabled"):
                await self._put_strategy(other, disabled=True)
        now = await self._state()
        if not now["enabled"]:
            await self._call("POST", f"{self._env_url}/on")
        found = self._ours(now["strategies"])
        if found is None or found.get("parameters", {}).get("rollout") != _rollout(change.weight):
            raise ActuatorError(
                f"Unleash {self.config.feature}: set rollout {_rollout(change.weight)}, read back {found}"
            )

    async def _put_strategy(self, strategy: dict[str, Any], *, disabled: bool | None = None) -> None:
        body = {k: strategy[k] for k in _STRATEGY_FIELDS if k in strategy}
        if disabled is not None:
            body["disabled"] = disabled
        await self._call("PUT", f"{self._env_url}/strategies/{strategy['id']}", body)

    async def restore(self, change: ExposureChange, original: Exposure) -> None:
        before = original.state or {}
        if "strategies" not in before:
            await self.apply(change)
            return
        now = await self._state()
        if not now["exists"]:
            return
        if not before.get("enabled") and now["enabled"]:
            await self._call("POST", f"{self._env_url}/off")  # off first: then nothing serves more
        present = {s["id"]: s for s in now["strategies"]}
        for strategy in before.get("strategies", []):
            if strategy["id"] in present and present[strategy["id"]] != strategy:
                await self._put_strategy(strategy)
        kept = {s["id"] for s in before.get("strategies", [])}
        for strategy in now["strategies"]:
            if strategy.get("title") == TITLE and strategy["id"] not in kept:
                await self._call("DELETE", f"{self._env_url}/strategies/{strategy['id']}")
        # Unleash switches a flag off by itself when its last live strategy goes: put the
        # environment's state back last, whatever happened on the way.
        if (await self._state())["enabled"] != bool(before.get("enabled")):
            await self._call("POST", f"{self._env_url}/{'on' if before.get('enabled') else 'off'}")

    async def served(self, change: ExposureChange) -> bool | None:
        """With `client_token`, whether the client API (what SDKs poll, asked as an SDK asks,
        since Unleash caches its answer per kind of client) serves shiprail's strategy at this
        change's rollout; without it, nobody can tell."""
        if self.config.client_token is None:
            return None
        import aiohttp

        headers = {
            "Authorization": resolve(self.config.client_token, what="unleash client token"),
            "Unleash-Client-Spec": _CLIENT_SPEC,
        }
        try:
            async with pooled_session().get(
                f"{self.config.url.rstrip('/')}/api/client/features",
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout.total_seconds()),
            ) as response:
                if response.status >= 400:
                    return False
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        feature = next((f for f in answer.get("features", []) if f.get("name") == self.config.feature), None)
        if feature is None or not feature.get("enabled"):
            return False
        return any(
            s.get("parameters", {}).get("groupId") == str(self.config.bucket_key)
            and s.get("parameters", {}).get("rollout") == _rollout(change.weight)
            for s in feature.get("strategies", [])
        )
