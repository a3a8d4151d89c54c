"""The compare gate's false-rollback promise on over-dispersed traffic, quiet and very busy.

Each arm's error rate (or median latency) wobbles from interval to interval, as two sets of
pods do; requests within an interval are Poisson. A good release must fail at most
1 − confidence of its bakes, bounded here at the upper 95 % Wilson limit ≤ 2 % over 2,000
bakes per cell. A gate that trusts Poisson alone fails far more of the same busy streams,
and a real regression is still caught, also when it starts midway.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from shiprail.gates import Verdict, judge
from shiprail.gates.base import GateContext, QueryResult
from shiprail.plan.models import Gate
from tests.helpers import gate_context

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INTERVAL = 10  # seconds between looks
LOOKS = 30  # a five-minute bake
BOUNDS_MS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500)
ERRORS: Gate = TypeAdapter(Gate).validate_python(
    {"type": "compare", "bad": "e", "total": "t", "max_increase": 0.2, "interval": f"{INTERVAL}s"}
)
LATENCY: Gate = TypeAdapter(Gate).validate_python(
    {"type": "compare", "histogram": "h", "max_increase": 0.1, "interval": f"{INTERVAL}s"}
)


def wilson_upper(failures: int, n: int, z: float = 1.96) -> float:
    p = failures / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    return centre + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)


# Every promise is proven over 2,000 good bakes a cell in `make bench` (SHIPRAIL_FULL_PROMISE):
# the upper 95 % bound of the rate at most 2 %. `make test` spot-checks the first 100 of
# the same bakes, held to the promise's own 1 % (fails from 2 rolled back): a gate that
# trusts Poisson fails busy cells by the dozen (`test_a_test_that_trusts_poisson_…`), and
# at 2,000 the cells took most of the suite's 15 minutes.
RUNS = 2000
SPOT_RUNS = RUNS if os.environ.get("SHIPRAIL_FULL_PROMISE") else 100


def assert_within_promise(failed: int, runs: int, what: str = "good bakes") -> None:
    if runs >= RUNS:
        assert wilson_upper(failed, runs) <= 0.02, f"{failed} of {runs} {what} rolled back"
    else:
        assert failed <= runs // 100, f"{failed} of {runs} {what} rolled back"


def _ctx(look: int) -> GateContext:
    return gate_context(INTERVAL * look, bake=INTERVAL * LOOKS, interval=INTERVAL, service="svc", start=START)


def _wobble(rng: np.random.Generator, cv: float, size: int) -> np.ndarray:
    k = 1 / cv**2
    return rng.gamma(k, 1 / k, size=size)


def error_looks(
    rng: np.random.Generator,
    rpm: float,
    *,
    rate: float = 0.01,
    cv: float = 0.5,
    factor: float = 1.0,
    start: int = 0,
    share: float = 0.1,
) -> list[dict[str, QueryResult]]:
    """Cumulative counts at each look, the canary serving `share` of the requests; its rate
    is `factor`× from look `start` on."""
    per_interval = rpm * INTERVAL / 60
    totals = np.zeros(2)
    bad = np.zeros(2)
    out = []
    for look in range(1, LOOKS + 1):
        requests = rng.poisson([share * per_interval, (1 - share) * per_interval])
        rates = rate * _wobble(rng, cv, 2) * np.array([factor if look > start else 1.0, 1.0])
        bad += rng.binomial(requests, np.clip(rates, 0, 1))
        totals += requests
        out.append(
            {
                "canary_bad": QueryResult(value=float(bad[0])),
                "canary_total": QueryResult(value=float(totals[0])),
                "baseline_bad": QueryResult(value=float(bad[1])),
                "baseline_total": QueryResult(value=float(totals[1])),
            }
        )
    return out


def latency_looks(
    rng: np.random.Generator,
    rpm: float,
    *,
    cv: float = 0.1,
    factor: float = 1.0,
    start: int = 0,
    sigma: float = 0.5,
    shocks: float = 0.0,
    share: float = 0.1,
    looks: int = LOOKS,
) -> list[dict[str, QueryResult]]:
    """Cumulative histograms at each look around a 60 ms lognormal median (shape `sigma`),
    the canary serving `share` of the requests; with probability `shocks` a look starts
    three in which both arms are twice as slow."""
    from scipy.special import ndtr

    per_interval = rpm * INTERVAL / 60
    logs = np.log(np.array(BOUNDS_MS, dtype=float))
    within = np.zeros((2, len(BOUNDS_MS) + 1))
    out = []
    shocked = 0
    for look in range(1, looks + 1):
        shocked = 3 if rng.random() < shocks else max(shocked - 1, 0)
        requests = rng.poisson([share * per_interval, (1 - share) * per_interval])
        medians = 60 * _wobble(rng, cv, 2) * np.array([factor if look > start else 1.0, 1.0])
        medians *= 2.0 if shocked else 1.0
        for arm in range(2):
            cdf = ndtr((logs - math.log(medians[arm])) / sigma)
            cells = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
            within[arm] += np.cumsum(rng.multinomial(requests[arm], cells / cells.sum()))
        out.append(
            {
                name: QueryResult(
                    by_label={
                        **{f"{b / 1000:g}": float(within[arm, j]) for j, b in enumerate(BOUNDS_MS)},
                        "+Inf": float(within[arm, -1]),
                    }
                )
                for arm, name in enumerate(("canary", "baseline"))
            }
        )
    return out


def first_failure(gate: Gate, stream: list[dict[str, QueryResult]]) -> int | None:
    memory: dict[str, Any] = {}
    for look, results in enumerate(stream, start=1):
        if judge("g", gate, _ctx(look), results, memory).status is Verdict.FAIL:
            return look
    return None


def false_rollbacks(gate: Gate, streams: Any, runs: int) -> tuple[int, int]:
    failed = sum(first_failure(gate, next(streams)) is not None for _ in range(runs))
    return failed, runs


@pytest.mark.long
@pytest.mark.parametrize("rpm", [20, 100_000])
def test_error_counts_keep_the_promise_on_over_dispersed_good_streams(rpm: float) -> None:
    rng = np.random.default_rng(rpm)
    streams = (error_looks(rng, rpm) for _ in iter(int, 1))
    assert_within_promise(*false_rollbacks(ERRORS, streams, SPOT_RUNS))


# 2,000 req/min: about 33 canary requests an interval, where the per-interval test begins
# to take intervals and a share's probit is least like a normal.
@pytest.mark.long
@pytest.mark.parametrize("rpm", [20, 2_000, 100_000])
def test_the_histogram_keeps_the_promise_on_over_dispersed_good_streams(rpm: float) -> None:
    rng = np.random.default_rng(rpm + 1)
    streams = (latency_looks(rng, rpm) for _ in iter(int, 1))
    assert_within_promise(*false_rollbacks(LATENCY, streams, SPOT_RUNS))


@pytest.mark.long
def test_the_histogram_keeps_the_promise_on_a_narrow_busy_service_with_shocks() -> None:
    """The hardest good canary seen: a narrow distribution (σ 0.2) whose medians wobble 15 %
    an interval, so a tail bound's share jumps many times over, and shocks that make both
    arms twice as slow for three looks, so that share goes from almost nothing to a third.
    (Pods' wobble in units of share rather than of log odds: 95 of 300 rolled back.)"""
    rng = np.random.default_rng(5)
    streams = (latency_looks(rng, 50_000, cv=0.15, sigma=0.2, shocks=0.05) for _ in iter(int, 1))
    assert_within_promise(*false_rollbacks(LATENCY, streams, SPOT_RUNS))


def _since(results: dict[str, QueryResult], base: dict[str, QueryResult]) -> dict[str, QueryResult]:
    """A histogram's counts over the window from `base` on, as a query from there reads them."""
    return {
        name: QueryResult(by_label={le: x - base[name].by_label[le] for le, x in r.by_label.items()})
        for name, r in results.items()
    }


def first_failure_after_warm_up(gate: Gate, stream: list[dict[str, QueryResult]], missed: Any) -> int | None:
    """A bake as the bake activity takes it (`gates.look`): looks inside `initial_delay` learn
    the noise over the window from the step's start and judge nothing; the judged looks read
    the window from the warm-up's end. A missed scrape is a look that finds no data."""
    from shiprail.gates import WARM_UP, after_warm_up, first_memory, warm_up_gate

    memory = first_memory(gate, None)
    warm, delay = warm_up_gate(gate), int(gate.initial_delay.total_seconds() / INTERVAL)
    for look, results in enumerate(stream, start=1):
        if missed[look - 1]:
            continue
        ctx = gate_context(
            INTERVAL * look, bake=INTERVAL * len(stream), interval=INTERVAL, service="svc", start=START
        )
        if WARM_UP in memory and warm is not None:
            judge("g", warm, ctx, results, memory[WARM_UP])
            if look < delay:
                continue
            settled = after_warm_up(gate, memory)
            memory.clear()
            memory.update(settled)
        if (
            look > delay
            and judge("g", gate, ctx, _since(results, stream[delay - 1]), memory).status is Verdict.FAIL
        ):
            return look
    return None


@pytest.mark.long
def test_the_histogram_keeps_the_promise_after_a_warm_up_with_missed_scrapes() -> None:
    """A first step that learns its noise from a one-minute warm-up on a busy service whose
    pods wobble hard (each arm's median 16 % an interval), with 30 % of the scrapes missed:
    a warm-up with two missed scrapes has intervals two or three looks long, whose wobble
    averages out, and the first judged look has one interval to read."""
    gate = LATENCY.model_copy(update={"initial_delay": timedelta(minutes=1)})
    rng = np.random.default_rng(31)
    failed = 0
    for _ in range(SPOT_RUNS):
        stream = latency_looks(rng, 50_000, cv=0.16, sigma=0.6, looks=LOOKS + 6)
        failed += first_failure_after_warm_up(gate, stream, rng.random(len(stream)) < 0.3) is not None
    assert_within_promise(failed, SPOT_RUNS)


def test_a_test_that_trusts_poisson_fails_busy_good_streams() -> None:
    """The reference point: the same counts as one Poisson test, no dispersion, no restarts."""
    from shiprail.gates.stats import e_value, tolerated_share

    rng = np.random.default_rng(7)
    runs, failed = 300, 0
    for _ in range(runs):
        best = 0.0
        for results in error_looks(rng, 100_000):
            c, b = results["canary_bad"].value or 0, results["baseline_bad"].value or 0
            ct, bt = results["canary_total"].value or 0, results["baseline_total"].value or 0
            share = tolerated_share(ct / (ct + bt), 0.2)
            if c / (c + b) > share:
                best = max(best, e_value(round(b), round(c), share, 10.0))
        failed += best >= 100
    assert failed / runs > 0.10


# Detection, on streams noisy enough to matter (each arm's error rate wobbling by 20 % an
# interval, its median latency by 5 %) but not the worst the promise is held to above.


@pytest.mark.parametrize(("rpm", "factor", "caught"), [(100_000, 3.0, 36), (20_000, 2.0, 18)])
def test_an_error_regression_is_caught_through_the_noise(rpm: float, factor: float, caught: int) -> None:
    rng = np.random.default_rng(11)
    looks = [first_failure(ERRORS, error_looks(rng, rpm, factor=factor, cv=0.2)) for _ in range(40)]
    assert sum(c is not None for c in looks) >= caught


def test_a_regression_starting_midway_is_not_taken_for_noise() -> None:
    rng = np.random.default_rng(12)
    start = LOOKS // 2
    looks = [
        first_failure(ERRORS, error_looks(rng, 20_000, factor=3.0, start=start, cv=0.2)) for _ in range(40)
    ]
    assert all(c is None or c > start for c in looks)
    assert sum(c is not None for c in looks) >= 28


@pytest.mark.parametrize(("factor", "start", "caught"), [(1.5, 0, 36), (1.5, LOOKS // 2, 34), (1.2, 0, 4)])
def test_a_slowdown_is_caught_through_the_noise(factor: float, start: int, caught: int) -> None:
    rng = np.random.default_rng(13)
    looks = [
        first_failure(LATENCY, latency_looks(rng, 20_000, factor=factor, start=start, cv=0.05))
        for _ in range(40)
    ]
    assert all(c is None or c > start for c in looks)
    assert sum(c is not None for c in looks) >= caught


def test_a_restart_reads_the_noise_of_its_own_window_once_a_regression_has_begun() -> None:
    """Every interval's pairs hold the step between the old level and the new one; read as
    noise, it hides a busy service's slowdown for the rest of the bake. The restart made
    where it began reads its own window, which holds only the new level. (Every interval's
    pairs alone: 28 of these 40 caught.)"""
    rng = np.random.default_rng(21)
    start = LOOKS // 2
    looks = [
        first_failure(LATENCY, latency_looks(rng, 100_000, factor=1.3, start=start, cv=0.05))
        for _ in range(40)
    ]
    assert all(c is None or c > start for c in looks)
    assert sum(c is not None for c in looks) >= 34


def test_a_restart_reads_the_lower_of_its_own_windows_and_every_intervals_noise() -> None:
    from shiprail.gates.sequential import _noise
    from shiprail.gates.stats import dispersion, observe_interval

    state: dict[str, Any] = {}
    shares = [0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    windows: list[Any] = []
    for i, share in enumerate(shares):
        pair = observe_interval(state, 1000 * share, 1000 * (1 - share))
        # A restart made after interval 6 (the step): its window starts with the pair
        # after the one across its origin.
        if i >= 8 and pair is not None:
            windows = [windows[0] + pair[0], windows[1] + pair[1], windows[2] + 1] if windows else [*pair, 1]
    marks: list[list[Any]] = [[6, [], [], {"k": windows}], [9, [], [], {}]]
    phi = _noise({"k": state}, marks, ["k"])
    every = dispersion(state, 0.9)
    assert phi[0, 0] == pytest.approx(every)
    # The window after the step is steady: its bound is far below every interval's.
    assert phi[1, 0] < every / 5
    # A restart with no pairs of its own yet falls back to every interval's.
    assert phi[2, 0] == pytest.approx(every)
