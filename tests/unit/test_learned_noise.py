"""A step's histogram gate hands what it learned of the noise to the next step of the service."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shiprail.gates import Verdict, judge, learned_noise, starting_memory
from shiprail.gates.intervals import CARRIED_FREEDOM
from tests.unit.test_overdispersion import LATENCY, _ctx, latency_looks


def _bake(stream: list[Any], memory: dict[str, Any]) -> int | None:
    for look, results in enumerate(stream, start=1):
        if judge("g", LATENCY, _ctx(look), results, memory).status is Verdict.FAIL:
            return look
    return None


def test_a_step_hands_its_noise_to_the_next() -> None:
    """Each bound's residual comes without units (about one per degree of freedom when the
    weights fit), with its wobble; the next step starts from that wobble."""
    rng = np.random.default_rng(11)
    memory: dict[str, Any] = {}
    assert _bake(latency_looks(rng, 20_000), memory) is None
    learned = learned_noise(LATENCY, memory)["intervals"]
    assert len(learned) >= 4
    for name, (chi2, freedom, wobble, pairs) in learned.items():
        assert 10 <= freedom <= CARRIED_FREEDOM and 0.3 < chi2 / freedom < 3, name
        assert [wobble, pairs] == pytest.approx(memory["intervals"]["keys"][name]["spread"][:2])

    following = starting_memory(LATENCY, {"intervals": learned})
    judge("g", LATENCY, _ctx(1), latency_looks(rng, 20_000)[0], following)
    keys = following["intervals"]["keys"]
    assert all(keys[name]["spread"][:2] == learned[name][2:] for name in learned)
    # A third step knows both steps before it.
    for look, results in enumerate(latency_looks(rng, 20_000)[1:], start=2):
        judge("g", LATENCY, _ctx(look), results, following)
    again = learned_noise(LATENCY, following)["intervals"]
    assert all(again[name][1] == CARRIED_FREEDOM for name in learned)
    # Worth at most CARRIED_FREEDOM intervals, at the scale they read.
    for name in learned:
        assert again[name][0] / again[name][1] == pytest.approx(
            (learned[name][0] + _residual(following, name)) / (learned[name][1] + _count(following, name) - 1)
        )


def _count(memory: dict[str, Any], name: str) -> float:
    return float(memory["intervals"]["keys"][name]["sums"][0])


def _residual(memory: dict[str, Any], name: str) -> float:
    """A bound's residual about its mean this step, over the variance it was weighed to."""
    state = memory["intervals"]["keys"][name]
    _, weight, first, second = state["sums"]
    spread = state["spread"]
    unit = spread[2] / spread[3] + max(spread[0] / spread[1], 0.0)
    return float((second - first * first / weight) / unit)


def test_nothing_is_carried_by_gates_that_learn_nothing() -> None:
    errors: Any = LATENCY.model_copy(update={"histogram": None, "bad": "e", "total": "t"})
    assert learned_noise(errors, {"anything": 1}) == {}
    assert starting_memory(errors, {"intervals": {"0.1": [1.0, 1.0, 0.0, 0.0]}}) == {}
    assert starting_memory(LATENCY, None) == {}


def test_a_step_that_knows_its_noise_catches_a_slowdown_sooner() -> None:
    """The same slowdown, on the same streams, after a good step that did or did not hand on
    its noise: a restart near the onset has few intervals before it to read the scale from."""
    rng = np.random.default_rng(12)
    informed, alone = [], []
    for _ in range(30):
        first = latency_looks(rng, 20_000)
        second = latency_looks(rng, 20_000, factor=1.6, start=12)
        memory: dict[str, Any] = {}
        assert _bake(first, memory) is None
        informed.append(_bake(second, starting_memory(LATENCY, learned_noise(LATENCY, memory))) or 99)
        alone.append(_bake(second, {}) or 99)
    assert min(informed) > 12 and min(alone) > 12
    sooner = sum(a < b for a, b in zip(informed, alone, strict=True))
    later = sum(a > b for a, b in zip(informed, alone, strict=True))
    assert sum(informed) < sum(alone) and sooner >= 3 * max(later, 1)
