"""The flagd actuator, proven through the OpenFeature flagd evaluator (in-process, the
version the lock pins): the same users in every service at every step, only more of them
as the percentage rises, and exactly the users of before after a restore."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from shiprail.actuators import ExposureChange, PermanentActuatorError, for_config
from shiprail.plan import PlanError, parse_plan
from shiprail.plan.actuators import FlagdActuator as FlagdConfig
from tests.helpers import plan_document

USERS = [f"user-{n}" for n in range(10_000)]
FLAGS = ("checkout-new-pricing", "payments-new-pricing", "search-new-pricing")


def enabled(path: Path, flag: str) -> frozenset[str]:
    """The users for whom the real evaluator serves the flag on."""
    core = FlagdCore()
    core.set_flags(path.read_text())
    if flag not in json.loads(path.read_text())["flags"]:
        return frozenset()  # an absent flag serves every caller its default: off
    return frozenset(
        u for u in USERS if core.resolve_boolean_value(flag, False, EvaluationContext(targeting_key=u)).value
    )


def config(path: Path, flag: str, bucket_key: str = "new-pricing") -> FlagdConfig:
    return FlagdConfig(type="flagd", path=str(path), flag=flag, bucket_key=bucket_key)


def step(service: str, weight: float) -> ExposureChange:
    return ExposureChange(
        service=service, version="on", weight=weight, rollout_id="r", idempotency_key=f"r/{weight}"
    )


async def test_every_flag_picks_the_same_users_at_every_step_and_restore_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    # Before the rollout: one flag already has a hand-written rule, one is DISABLED, one absent.
    existing: dict[str, Any] = {
        "checkout-new-pricing": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "targetingKey"}, "user-7"]}, "on", "off"]},
        },
        "payments-new-pricing": {
            "state": "DISABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "unrelated": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a"},
    }
    path.write_text(json.dumps({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": existing}))
    before = {flag: enabled(path, flag) for flag in FLAGS}
    actuators = {flag: for_config(config(path, flag)) for flag in FLAGS}
    originals = {flag: await a.read(flag) for flag, a in actuators.items()}
    assert [originals[f].weight for f in FLAGS] == [0.0, 0.0, 0.0]
    previous: frozenset[str] = frozenset()
    for weight in (1, 5, 25, 50, 100):
        for flag, actuator in actuators.items():
            await actuator.apply(step(flag, weight))
            assert (await actuator.read(flag)).weight == weight
        sets = {flag: enabled(path, flag) for flag in FLAGS}
        assert len(set(sets.values())) == 1, f"services disagree at {weight}%"
        chosen = sets[FLAGS[0]]
        assert previous <= chosen, f"users dropped out when rising to {weight}%"
        p = weight / 100
        assert abs(len(chosen) - len(USERS) * p) <= 4 * math.sqrt(len(USERS) * p * (1 - p)) + 1e-9
        previous = chosen
    for flag, actuator in reversed(list(actuators.items())):
        await actuator.restore(step(flag, 0), originals[flag])
    document = json.loads(path.read_text())
    assert document["flags"] == existing
    assert {flag: enabled(path, flag) for flag in FLAGS} == before


async def test_another_bucket_key_picks_other_users(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    await for_config(config(path, "a", "key-one")).apply(step("a", 30))
    await for_config(config(path, "b", "key-two")).apply(step("b", 30))
    assert enabled(path, "a") != enabled(path, "b")


async def test_a_file_that_is_not_flag_definitions_is_a_permanent_error(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text("{not json")
    with pytest.raises(PermanentActuatorError, match="is not JSON"):
        await for_config(config(path, "a")).read("a")
    path.write_text('{"flags": []}')
    with pytest.raises(PermanentActuatorError, match="not a flagd flag-definition file"):
        await for_config(config(path, "a")).apply(step("a", 10))


def _flag_plan(services: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(plan_document("http://unused/exposure", services, metadata={"name": "new-pricing"}))


def test_flag_services_bucket_by_the_plan_name_unless_told_and_must_agree() -> None:
    service = {"name": "a", "actuator": {"type": "flagd", "path": "/f.json", "flag": "a"}}
    plan = parse_plan(_flag_plan([service]))
    assert plan.spec.services[0].actuator.bucket_key == "new-pricing"  # type: ignore[union-attr]
    differing = {
        "name": "b",
        "actuator": {"type": "flagd", "path": "/f.json", "flag": "b", "bucket_key": "other"},
    }
    with pytest.raises(PlanError, match="must bucket by the same key"):
        parse_plan(_flag_plan([service, differing]))
    twice = {"name": "b", "actuator": {"type": "flagd", "path": "/f.json", "flag": "a"}}
    with pytest.raises(PlanError, match="already drives this flag"):
        parse_plan(_flag_plan([service, twice]))
    with pytest.raises(PlanError, match="unknown actuator type 'launchdarkly'"):
        parse_plan(_flag_plan([{"name": "c", "actuator": {"type": "launchdarkly"}}]))
