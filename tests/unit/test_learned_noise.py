"""A step's histogram gate hands what it learned of the noise to the next step of the service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from shiprail.gates import (
    WARM_UP,
    Verdict,
    after_warm_up,
    first_memory,
    judge,
    learned_noise,
    starting_memory,
    warm_up_gate,
)
from shiprail.gates.intervals import CARRIED_FREEDOM
from shiprail.gates.two_sample import CARRIED_PAIRS, _every_pair
from shiprail.plan.models import Gate
from tests.unit.test_overdispersion import (
    ERRORS,
    INTERVAL,
    LATENCY,
    SPOT_RUNS,
    _ctx,
    assert_within_promise,
    error_looks,
    latency_looks,
)


def _bake(stream: list[Any], memory: dict[str, Any]) -> int | None:
    for look, results in enumerate(stream, start=1):
        if judge("g", LATENCY, _ctx(look), results, memory).status is Verdict.FAIL:
            return look
    return None


def _assert_sooner(informed: list[int], alone: list[int]) -> None:
    """The gate that knew the noise decided sooner in all, and on at least three times as
    many streams as it decided later (the same streams, look by look)."""
    sooner = sum(a < b for a, b in zip(informed, alone, strict=True))
    later = sum(a > b for a, b in zip(informed, alone, strict=True))
    assert sum(informed) < sum(alone) and sooner >= 3 * max(later, 1), (informed, alone)


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


def test_an_error_gate_carries_its_pairs_and_a_query_gate_nothing() -> None:
    """The counts form's pairs go on as the histogram's do, free of the canary's share of
    the bad requests (`stats.learned_pairs`); a `query` gate has no noise model to hand on."""
    rng = np.random.default_rng(16)
    memory: dict[str, Any] = {}
    for look, results in enumerate(error_looks(rng, 20_000), start=1):
        judge("g", ERRORS, _ctx(look), results, memory)
    counts = learned_noise(ERRORS, memory)["counts"]["bad"]
    state = memory["dispersion"]["bad"]
    p = state["sc"] / state["sk"]
    chi, weight, pairs = state["chi1"]
    assert counts == pytest.approx([chi, (2 * weight - pairs) * p * (1 - p), pairs], rel=1e-9)
    following = starting_memory(ERRORS, {"counts": {"bad": counts}})
    judge("g", ERRORS, _ctx(1), error_looks(rng, 20_000)[0], following)
    assert following["dispersion"]["bad"]["carried"] == counts

    query: Any = LATENCY.model_copy(update={"histogram": None, "query": "q"})
    assert learned_noise(query, {"anything": 1}) == {}
    assert starting_memory(query, {"counts": {"bad": [1.0, 1.0, 1.0]}}) == {}
    assert starting_memory(LATENCY, None) == {}


def test_a_step_that_knows_its_pairs_reads_a_narrower_dispersion_bound() -> None:
    """Calm pods, busy traffic: with a handful of pairs the error test's bound on ρ is
    mostly its own uncertainty; the pairs of a step before, put back at this step's
    share, narrow it."""
    rng = np.random.default_rng(17)
    memory: dict[str, Any] = {}
    for look, results in enumerate(error_looks(rng, 20_000, cv=0.02), start=1):
        judge("g", ERRORS, _ctx(look), results, memory)
    learned = learned_noise(ERRORS, memory)
    informed, alone = starting_memory(ERRORS, learned), {}
    for look, results in enumerate(error_looks(rng, 20_000, cv=0.02, share=0.3)[:6], start=1):
        with_pairs = judge("g", ERRORS, _ctx(look), results, informed).evidence["dispersion"]
        without = judge("g", ERRORS, _ctx(look), results, alone).evidence["dispersion"]
    assert 1.0 <= with_pairs < without


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
    _assert_sooner(informed, alone)


def test_the_count_test_hands_on_its_pairs_free_of_the_split() -> None:
    """A bound's pairs identify τ²·(1 − own)², τ² the wobble of each arm's log odds: they go
    on times (1 − own)², and a step at another split divides by its own, so both read the
    same wobble. A third step knows both steps before it, worth at most CARRIED_PAIRS."""
    rng = np.random.default_rng(13)
    memory: dict[str, Any] = {}
    assert _bake(latency_looks(rng, 3_000, share=0.1), memory) is None
    shares = learned_noise(LATENCY, memory)["shares"]
    assert len(shares) >= 4
    for name, (chi, identified, count) in shares.items():
        state = memory["shares"]["bounds"][name]
        own = state["sums"][5] / state["sums"][6]
        assert own == pytest.approx(0.1, abs=0.02)
        assert [chi, identified, count] == pytest.approx(
            [state["pairs"][0], state["pairs"][1] * (1 - own) ** 2, state["pairs"][2]]
        )

    following = starting_memory(LATENCY, {"shares": shares})
    stream = latency_looks(rng, 3_000, share=0.4)
    judge("g", LATENCY, _ctx(1), stream[0], following)
    for name, (chi, identified, count) in shares.items():
        state = following["shares"]["bounds"][name]
        rest = 1 - state["sums"][5] / state["sums"][6]
        assert rest == pytest.approx(0.6, abs=0.03)
        assert _every_pair(state, shares[name]) == pytest.approx([chi, identified / rest**2, count])
    for look, results in enumerate(stream[1:], start=2):
        judge("g", LATENCY, _ctx(look), results, following)
    again = learned_noise(LATENCY, following)["shares"]
    for name in shares:
        state = following["shares"]["bounds"][name]
        own = state["sums"][5] / state["sums"][6]
        count = shares[name][2] + state["pairs"][2]
        assert count > CARRIED_PAIRS and again[name][2] == pytest.approx(CARRIED_PAIRS)
        assert again[name][0] / again[name][2] == pytest.approx((shares[name][0] + state["pairs"][0]) / count)
        assert again[name][1] / again[name][2] == pytest.approx(
            (shares[name][1] + state["pairs"][1] * (1 - own) ** 2) / count
        )


def test_a_quiet_step_that_knows_its_pairs_catches_a_slowdown_sooner() -> None:
    """At a few canary requests an interval no bound has enough of them for the per-interval
    test, and the count test decides alone: its dispersion bound, read from a handful of
    pairs, asks for about twice the requests calm pods need, and the pairs of a step before
    narrow it."""
    rng = np.random.default_rng(14)
    informed, alone = [], []
    for _ in range(30):
        first = latency_looks(rng, 600, cv=0.02)
        second = latency_looks(rng, 600, cv=0.02, factor=1.5, start=8)
        memory: dict[str, Any] = {}
        assert _bake(first, memory) is None
        learned = learned_noise(LATENCY, memory)
        assert "shares" in learned and "intervals" not in learned
        informed.append(_bake(second, starting_memory(LATENCY, learned)) or 99)
        alone.append(_bake(second, {}) or 99)
    assert min(informed) > 8 and min(alone) > 8
    _assert_sooner(informed, alone)


# The promises below run as the over-dispersion cells do: the first 100 bakes in `make
# test` (fails from 2 rolled back), all 2,000 in `make bench` (`SPOT_RUNS`).


@pytest.mark.long
def test_a_step_that_carries_its_noise_keeps_the_promise() -> None:
    """What is carried assumes the same pods: good bakes of a busy, wobbly service whose
    canary's share grows fourfold from one step to the next, every test carrying. A
    rollback in either step counts. (Pods that wobble half as much again in the second step
    rolled back 5 of 2,000; twice as much, 3 of 200, over the promise: bench/README.md.)"""
    rng = np.random.default_rng(15)
    failed = 0
    for _ in range(SPOT_RUNS):
        memory: dict[str, Any] = {}
        if _bake(latency_looks(rng, 20_000, cv=0.15, share=0.05), memory) is not None:
            failed += 1
            continue
        following = starting_memory(LATENCY, learned_noise(LATENCY, memory))
        failed += _bake(latency_looks(rng, 20_000, cv=0.15, share=0.2), following) is not None
    assert_within_promise(failed, SPOT_RUNS, "good two-step bakes")


# A first step's warm-up: six looks, a minute at ten seconds.
WARM_LOOKS = 6
DELAYED = LATENCY.model_copy(update={"initial_delay": timedelta(seconds=WARM_LOOKS * INTERVAL)})


def _warmed(warm_up: list[Any]) -> dict[str, Any]:
    """The memory a first step's gate starts judging with, after its warm-up's looks."""
    memory = first_memory(DELAYED, None)
    warm = warm_up_gate(DELAYED)
    assert warm is not None and warm.initial_delay == timedelta(0) and WARM_UP in memory
    for look, results in enumerate(warm_up, start=1):
        judge("g", warm, _ctx(look), results, memory[WARM_UP])
    return after_warm_up(DELAYED, memory)


def test_a_first_step_learns_its_noise_from_its_warm_up() -> None:
    """The looks inside `initial_delay` judge nothing: what their intervals show of the
    noise is all the first judged look starts with, as if a step before had carried it.
    A gate without a warm-up, or a `query` gate, takes no such looks."""
    rng = np.random.default_rng(17)
    warm_up = latency_looks(rng, 20_000)[:WARM_LOOKS]
    memory = first_memory(DELAYED, None)
    for look, results in enumerate(warm_up, start=1):
        judge(
            "g",
            DELAYED.model_copy(update={"initial_delay": timedelta(0)}),
            _ctx(look),
            results,
            memory[WARM_UP],
        )
    learned = learned_noise(DELAYED, memory[WARM_UP])
    assert set(learned) == {"intervals", "shares", "slow"}
    assert all(
        x[1] == WARM_LOOKS - 2 for x in learned["intervals"].values()
    )  # the first interval has no length
    settled = _warmed(warm_up)
    assert settled == starting_memory(DELAYED, learned) and WARM_UP not in settled
    assert first_memory(LATENCY, None) == {} and warm_up_gate(LATENCY) is None
    samples = TypeAdapter(Gate).validate_python({"type": "compare", "query": "q", "initial_delay": "1m"})
    assert warm_up_gate(samples) is None and first_memory(samples, None) == {}


def test_a_first_step_that_learned_its_warm_up_catches_a_slowdown_sooner() -> None:
    """A regression from the first judged look leaves the gate no interval before it to
    read the noise from; a minute of warm-up gives it five."""
    rng = np.random.default_rng(18)
    informed, alone = [], []
    for _ in range(30):
        warm_up = latency_looks(rng, 5_000, cv=0.05)[:WARM_LOOKS]
        step = latency_looks(rng, 5_000, cv=0.05, factor=1.5)
        informed.append(_bake(step, _warmed(warm_up)) or 99)
        alone.append(_bake(step, {}) or 99)
    _assert_sooner(informed, alone)


@pytest.mark.long
def test_a_first_step_that_learned_its_warm_up_keeps_the_promise() -> None:
    """Good first steps of a busy, wobbly service, each judged from what its warm-up showed."""
    rng = np.random.default_rng(19)
    failed = 0
    for _ in range(SPOT_RUNS):
        warm_up = latency_looks(rng, 20_000, cv=0.15)[:WARM_LOOKS]
        failed += _bake(latency_looks(rng, 20_000, cv=0.15), _warmed(warm_up)) is not None
    assert_within_promise(failed, SPOT_RUNS, "good first steps")
