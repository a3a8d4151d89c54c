"""Each gate type on synthetic results: good, regressed, sparse, empty, NaN, erroring."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import TypeAdapter

from shiprail.gates import GateTracker, StepOutcome, Verdict, gate_queries, judge, step_outcome
from shiprail.gates.base import GateContext, QueryResult, too_few
from shiprail.gates.compare import SLOW_SHARE
from shiprail.plan.models import Gate

GATE = TypeAdapter(Gate)
START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def ctx(elapsed: float = 120, weight: float = 10) -> GateContext:
    return GateContext(
        service="payments",
        version="2.0",
        stable_version="1.0",
        weight=weight,
        step_start=START,
        now=START + timedelta(seconds=elapsed),
        bake=timedelta(minutes=5),
        interval=timedelta(seconds=30),
    )


def gate(**spec: Any) -> Gate:
    return GATE.validate_python(spec)


def run(
    g: Gate,
    results: dict[str, QueryResult],
    memory: dict[str, Any] | None = None,
    c: GateContext | None = None,
):  # type: ignore[no-untyped-def]
    return judge("g", g, c or ctx(), results, memory if memory is not None else {})


def looks(g: Gate, final: dict[str, QueryResult], n: int = 10, memory: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    """The bake's looks at its interval, each arm's counts growing evenly to `final`: a
    sequential gate learns its noise from the intervals between looks, so one look at a
    whole window can never reject. Returns the first failing verdict, else the last."""
    memory = memory if memory is not None else {}
    verdict = None
    for i in range(1, n + 1):
        share = i / n
        results = {
            k: QueryResult(
                value=None if r.value is None else r.value * share,
                by_label={le: v * share for le, v in r.by_label.items()},
                error=r.error,
            )
            for k, r in final.items()
        }
        verdict = run(g, results, memory, ctx(elapsed=30 * i))
        if verdict.status is Verdict.FAIL:
            break
    return verdict


V = lambda x: QueryResult(value=x)  # noqa: E731
EMPTY = QueryResult()
NAN = QueryResult(value=math.nan)
ERROR = QueryResult(error="Prometheus at http://x unreachable")

THRESHOLD = gate(type="threshold", query='x{service="{{service}}"}', max=0.01)


class TestThreshold:
    def test_queries_render_templates(self) -> None:
        assert gate_queries(THRESHOLD, ctx())["value"].promql == 'x{service="payments"}'

    @pytest.mark.parametrize(
        ("value", "status"), [(0.0, Verdict.PASS), (0.01, Verdict.PASS), (0.0101, Verdict.FAIL)]
    )
    def test_bound(self, value: float, status: Verdict) -> None:
        assert run(THRESHOLD, {"value": V(value)}).status is status

    @pytest.mark.parametrize("result", [EMPTY, NAN, ERROR, QueryResult(value=math.inf)])
    def test_missing_is_inconclusive(self, result: QueryResult) -> None:
        verdict = run(THRESHOLD, {"value": result})
        assert verdict.status is Verdict.INCONCLUSIVE and verdict.no_data

    def test_min_samples(self) -> None:
        g = gate(type="threshold", query="x", samples="n", min=0.5, min_samples=100)
        assert run(g, {"value": V(0.9), "samples": V(99)}).status is Verdict.INCONCLUSIVE
        assert run(g, {"value": V(0.9), "samples": V(100)}).status is Verdict.PASS
        assert run(g, {"value": V(0.4), "samples": V(100)}).status is Verdict.FAIL


BURN = gate(
    type="burn_rate",
    objective=0.999,
    bad='e{code=~"5.."}',
    total="e",
    windows=[{"long": "5m", "short": "1m", "max_burn": 14.4}],
    min_samples=100,
)


def burn_results(
    bad_long: float, total_long: float, bad_short: float, total_short: float
) -> dict[str, QueryResult]:
    return {
        "bad_0_long": V(bad_long),
        "total_0_long": V(total_long),
        "bad_0_short": V(bad_short),
        "total_0_short": V(total_short),
    }


class TestBurnRate:
    def test_windows_clipped_to_step(self) -> None:
        queries = gate_queries(BURN, ctx(elapsed=90))
        assert "[90s]" in queries["total_0_long"].promql and "[60s]" in queries["total_0_short"].promql
        assert "or vector(0)" in queries["bad_0_long"].promql

    def test_both_windows_burning_fails(self) -> None:
        verdict = run(BURN, burn_results(20, 1000, 10, 400))  # 2% and 2.5% = 20× and 25×
        assert verdict.status is Verdict.FAIL and "20.0×" in verdict.reason

    def test_only_long_window_burning_passes(self) -> None:
        # errors stopped: the short window recovers, so the gate does too
        assert run(BURN, burn_results(20, 1000, 0, 400)).status is Verdict.PASS

    def test_low_error_passes(self) -> None:
        verdict = run(BURN, burn_results(1, 1000, 0, 400))
        assert verdict.status is Verdict.PASS and verdict.value == pytest.approx(1.0)

    def test_too_few_requests(self) -> None:
        assert run(BURN, burn_results(5, 50, 5, 20)).status is Verdict.INCONCLUSIVE

    @pytest.mark.parametrize("result", [EMPTY, NAN, ERROR, V(0)])
    def test_no_traffic_or_error_is_inconclusive(self, result: QueryResult) -> None:
        results = burn_results(0, 1000, 0, 400)
        results["total_0_short"] = result
        assert run(BURN, results).status is Verdict.INCONCLUSIVE


LATENCY_Q = gate(type="latency", histogram='h_bucket{service="{{service}}"}', quantile=0.99, max=0.3)
LATENCY_SLI = gate(type="latency", histogram="h_bucket", faster_than=0.25, objective=0.95)


class TestLatency:
    def test_quantile_queries(self) -> None:
        q = gate_queries(LATENCY_Q, ctx(elapsed=30))
        assert q["quantile"].promql.startswith(
            'histogram_quantile(0.99, sum by (le) (rate(h_bucket{service="payments"}[30s])))'
        )
        assert 'le="+Inf"' in q["count"].promql

    def test_quantile_verdicts(self) -> None:
        assert run(LATENCY_Q, {"count": V(500), "quantile": V(0.2)}).status is Verdict.PASS
        failed = run(LATENCY_Q, {"count": V(500), "quantile": V(0.45)})
        assert failed.status is Verdict.FAIL and "450ms > 300ms" in failed.reason

    @pytest.mark.parametrize("result", [EMPTY, NAN, ERROR])
    def test_quantile_missing(self, result: QueryResult) -> None:
        assert run(LATENCY_Q, {"count": V(500), "quantile": result}).status is Verdict.INCONCLUSIVE

    def test_sli_form(self) -> None:
        assert 'le="0.25"' in gate_queries(LATENCY_SLI, ctx())["fast"].promql
        assert run(LATENCY_SLI, {"count": V(1000), "fast": V(960)}).status is Verdict.PASS
        assert run(LATENCY_SLI, {"count": V(1000), "fast": V(900)}).status is Verdict.FAIL
        assert run(LATENCY_SLI, {"count": V(0), "fast": V(0)}).status is Verdict.INCONCLUSIVE


COMPARE = gate(
    type="compare",
    bad='e{version="{{version}}",code="500"}',
    total='e{version="{{version}}"}',
    max_increase=0.0,
    confidence=0.99,
)


def counts(cb: float, ct: float, bb: float, bt: float) -> dict[str, QueryResult]:
    return {"canary_bad": V(cb), "canary_total": V(ct), "baseline_bad": V(bb), "baseline_total": V(bt)}


class TestCompareCounts:
    def test_queries_use_both_versions(self) -> None:
        q = gate_queries(COMPARE, ctx())
        assert 'version="2.0"' in q["canary_total"].promql and 'version="1.0"' in q["baseline_total"].promql
        assert "[120s]" in q["canary_bad"].promql

    def test_warm_up_before_initial_delay_is_not_evidence(self) -> None:
        warming = gate(type="compare", bad="b", total="t", initial_delay="45s")
        assert "[75s]" in gate_queries(warming, ctx(elapsed=120))["canary_bad"].promql

    def test_equal_rates_pass(self) -> None:
        assert looks(COMPARE, counts(10, 1000, 90, 9000)).status is Verdict.PASS

    def test_one_error_in_a_window_prometheus_extrapolated_to_no_traffic_is_no_proof(self) -> None:
        # Each `increase` is extrapolated on its own, so a growing window's canary total can
        # read lower than a look before (33, then 30) just as its first error arrives: the
        # restart made at that look then sees an error and no canary traffic. A good canary
        # with one error in 34 requests against none in 58 must not fail (it did, p = 3·10⁻⁹).
        g = gate(type="compare", bad="b", total="t", max_increase=0.5, confidence=0.99, interval="1s")
        memory: dict[str, Any] = {}
        readings = [
            (0, 12, 0, 13),
            (0, 25, 0, 24),
            (0, 33, 0, 36),
            (1, 30, 0, 49),
            (2, 34, 0, 58),
            (2, 44, 0, 61),
        ]
        for second, reading in enumerate(readings, start=1):
            c = GateContext(
                service="payments",
                version="2.0",
                stable_version="1.0",
                weight=50,
                step_start=START,
                now=START + timedelta(seconds=second),
                bake=timedelta(seconds=6),
                interval=timedelta(seconds=1),
            )
            verdict = run(g, counts(*reading), memory, c)
            assert verdict.status is Verdict.PASS and verdict.evidence["p_value"] > 0.5, (
                reading,
                verdict.reason,
            )

    def test_good_counter_counts_the_rest_as_bad(self) -> None:
        fast = gate(type="compare", good='b{le="0.25",version="{{version}}"}', total="t")
        q = gate_queries(fast, ctx())
        assert set(q) == {"canary_good", "canary_total", "baseline_good", "baseline_total"}
        assert 'le="0.25",version="2.0"' in q["canary_good"].promql
        slow = {
            "canary_good": V(960),
            "canary_total": V(1000),
            "baseline_good": V(8910),
            "baseline_total": V(9000),
        }
        verdict = looks(fast, slow)  # 4% slow vs 1% slow
        assert verdict.status is Verdict.FAIL and verdict.evidence["canary_errors"] > 0
        same = {
            "canary_good": V(990),
            "canary_total": V(1000),
            "baseline_good": V(8910),
            "baseline_total": V(9000),
        }
        assert looks(fast, same).status is Verdict.PASS

    def test_a_rate_never_reads_past_100_percent(self) -> None:
        """Each counter's `increase` is extrapolated on its own: total − good rounds past total."""
        fast = gate(type="compare", good="g", total="t")
        every_one_slow = {
            "canary_good": V(0),
            "canary_total": V(18.6),
            "baseline_good": V(160),
            "baseline_total": V(160),
        }
        verdict = run(fast, every_one_slow, {}, ctx())
        assert "rate 100% vs baseline 0%" in verdict.reason, verdict.reason

    @pytest.mark.parametrize(
        "spec",
        [
            {"bad": "b", "good": "g", "total": "t"},
            {"good": "g"},
            {"good": "g", "total": "t", "query": "q"},
        ],
    )
    def test_good_form_rejects_ambiguity(self, spec: dict[str, str]) -> None:
        with pytest.raises(ValueError):
            gate(type="compare", **spec)

    def test_clear_regression_fails(self) -> None:
        verdict = looks(COMPARE, counts(40, 1000, 90, 9000))  # 4% vs 1%
        assert verdict.status is Verdict.FAIL
        assert "4.0× baseline" in verdict.reason and verdict.evidence["p_value"] <= 0.01

    def test_better_canary_never_fails(self) -> None:
        assert looks(COMPARE, counts(0, 1000, 500, 9000)).status is Verdict.PASS

    def test_tolerance(self) -> None:
        tolerant = gate(type="compare", bad="b", total="t", max_increase=1.0)
        assert looks(tolerant, counts(30, 1000, 135, 9000)).status is Verdict.PASS  # 2× under a 2× tolerance

    def test_p_value_is_one_over_the_running_maximum_e_value(self) -> None:
        memory: dict[str, Any] = {}
        first = looks(COMPARE, counts(40, 1000, 90, 9000), n=4, memory=memory)
        high = memory["e_max"]
        assert high > 1 and first.evidence["p_value"] == pytest.approx(1 / high)
        later = run(
            COMPARE, counts(41, 2000, 180, 18000), memory, ctx(elapsed=150)
        )  # later evidence looks fine
        assert memory["e_max"] == high and later.evidence["p_value"] == first.evidence["p_value"]

    def test_evidence_that_the_canary_is_better_is_not_held_against_it(self) -> None:
        # A canary far better than the tolerance must not leave behind a p-value that fails
        # it the moment noise tips it over the line.
        tolerant = gate(type="compare", bad="b", total="t", max_increase=0.2)
        memory: dict[str, Any] = {}
        assert run(tolerant, counts(20, 1000, 900, 9000), memory).status is Verdict.PASS  # 2% vs 10%
        hair_worse = run(tolerant, counts(270, 2000, 1800, 18000), memory)  # 13.5% vs 10%: 1.35×
        assert hair_worse.status is Verdict.PASS and hair_worse.evidence["p_value"] > 0.01

    def test_no_traffic_is_inconclusive(self) -> None:
        assert run(COMPARE, counts(0, 0, 0, 1000)).status is Verdict.INCONCLUSIVE
        assert run(COMPARE, {**counts(0, 100, 0, 1000), "canary_total": ERROR}).status is Verdict.INCONCLUSIVE

    def test_not_applicable_at_full_weight(self) -> None:
        assert gate_queries(COMPARE, ctx(weight=100)) == {}
        assert run(COMPARE, {}, c=ctx(weight=100)).status is Verdict.PASS


class TestCompareSamples:
    G = gate(type="compare", query='lat{version="{{version}}"}', max_increase=0.1)

    def test_shifted_samples_fail_and_equal_pass(self) -> None:
        base = [0.100 + 0.001 * (i % 7) for i in range(40)]
        slow = [v * 1.5 for v in base]
        memory: dict[str, Any] = {}
        c = ctx(elapsed=300)
        assert (
            run(
                self.G, {"canary": QueryResult(series=base), "baseline": QueryResult(series=base)}, memory, c
            ).status
            is Verdict.PASS
        )
        verdict = run(
            self.G, {"canary": QueryResult(series=slow), "baseline": QueryResult(series=base)}, memory, c
        )
        assert verdict.status is Verdict.FAIL

    def test_too_few_samples(self) -> None:
        assert (
            run(
                self.G, {"canary": QueryResult(series=[1.0]), "baseline": QueryResult(series=[1.0, 2.0, 3.0])}
            ).status
            is Verdict.INCONCLUSIVE
        )


def histogram(total: float, slower: dict[str, float]) -> QueryResult:
    """Cumulative bucket counts from the share of requests slower than each bound."""
    return QueryResult(by_label={**{le: total * (1 - share) for le, share in slower.items()}, "+Inf": total})


def lognormal(median_ms: float, sigma: float = 0.5) -> dict[str, float]:
    """Share of requests slower than each bound of a lognormal latency."""
    bounds = ("0.025", "0.05", "0.1", "0.25", "0.5", "1")
    return {le: 1 - NormalDist().cdf(math.log(float(le) * 1000 / median_ms) / sigma) for le in bounds}


class TestCompareHistogram:
    G = gate(type="compare", histogram='h_bucket{version="{{version}}"}', max_increase=0.1)
    STABLE: ClassVar[dict[str, float]] = lognormal(60)

    def arms(
        self, canary_median_ms: float, canary: float = 1000, baseline: float = 9000
    ) -> dict[str, QueryResult]:
        return {
            "canary": histogram(canary, lognormal(canary_median_ms)),
            "baseline": histogram(baseline, self.STABLE),
        }

    def test_one_query_per_arm_by_bucket(self) -> None:
        q = gate_queries(self.G, ctx())
        assert set(q) == {"canary", "baseline"} and q["canary"].by == "le"
        assert q["canary"].promql == 'sum by (le) (increase(h_bucket{version="2.0"}[120s]))'
        assert 'version="1.0"' in q["baseline"].promql

    def test_a_slowdown_fails_where_it_shows_most(self) -> None:
        verdict = looks(self.G, self.arms(60 * 1.5))
        assert verdict.status is Verdict.FAIL
        le = verdict.evidence["le"]
        assert f"slower than {float(le) * 1100:.3g} ms vs baseline" in verdict.reason
        # (1 + δ)·b must lie within the histogram: the last bound cannot be read at 1.1 s.
        assert verdict.evidence["bounds"] == 5 and "over 5 bounds" in verdict.reason

    def test_the_same_distribution_passes_pending(self) -> None:
        verdict = looks(self.G, self.arms(60))
        assert verdict.status is Verdict.PASS and verdict.pending

    @pytest.mark.parametrize(
        ("factor", "fails"), [(1.05, False), (1.09, False), (1.2, True), (1.5, True), (2.0, True)]
    )
    def test_the_tolerance_is_in_latency_not_in_shares(self, factor: float, fails: bool) -> None:
        # A billion requests, no noise: only the tolerance decides. +9 % moves the share
        # slower than 100 ms from 16 % to 20 %, which a share tolerance of 10 % would fail.
        verdict = looks(self.G, self.arms(60 * factor, canary=1e8, baseline=9e8))
        assert (verdict.status is Verdict.FAIL) is fails

    def test_the_running_maximum_of_the_evidence_is_kept(self) -> None:
        memory: dict[str, Any] = {}
        looks(self.G, self.arms(90), memory=memory)
        high = memory["e_max"]
        assert high > 100
        later = run(
            self.G,
            {"canary": histogram(20000, self.STABLE), "baseline": histogram(180000, self.STABLE)},
            memory,
            ctx(elapsed=330),
        )
        assert memory["e_max"] == high and later.evidence["p_value"] == pytest.approx(1 / high)

    def test_false_failures_stay_below_alpha_over_many_looks(self) -> None:
        # Identical latency on both arms, 30 looks of a growing window, α = 0.2 and no
        # tolerance. The gate fails none of these runs; one that paid nothing for peeking
        # (each bound's one-sided z-test at every look, no memory) fails 38 %.
        g = gate(type="compare", histogram="h", confidence=0.8)
        bounds = tuple(self.STABLE)
        cdf = [NormalDist().cdf(math.log(float(le) / 0.06) / 0.5) for le in bounds]
        cells = np.diff([0.0, *cdf, 1.0])
        rng = np.random.default_rng(3)
        runs, failed = 100, 0
        for _ in range(runs):
            memory: dict[str, Any] = {}
            requests = np.zeros((2, len(cells)))
            for _ in range(30):
                requests[0] += rng.multinomial(rng.poisson(30), cells)
                requests[1] += rng.multinomial(rng.poisson(270), cells)
                within = np.cumsum(requests, axis=1)
                results = {
                    name: QueryResult(
                        by_label={
                            **{le: float(within[arm, j]) for j, le in enumerate(bounds)},
                            "+Inf": float(within[arm, -1]),
                        }
                    )
                    for arm, name in enumerate(("canary", "baseline"))
                }
                if run(g, results, memory).status is Verdict.FAIL:
                    failed += 1
                    break
        assert failed / runs <= 0.2

    @pytest.mark.parametrize("slow_share", [SLOW_SHARE, 0.0])
    def test_a_quiet_canary_slower_than_every_baseline_request_fails_within_a_few_looks(
        self, slow_share: float, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The demo's slow inventory at its 50 % step: a dozen requests an arm a look, every
        canary request slower than anything the baseline serves. The count test weighs the pods' wobble at the pooled
        share, which the regression itself has moved to the middle, and alone it cannot
        decide in a short step; the slow requests' own test sees that they are all the
        canary's."""
        monkeypatch.setattr("shiprail.gates.compare.SLOW_SHARE", slow_share)
        g = gate(
            type="compare", histogram='h_bucket{version="{{version}}"}', max_increase=0.5, confidence=0.99
        )
        baseline = {"0.01": 0.7, "0.025": 0.03, "0.05": 0.0, "0.1": 0.0, "0.25": 0.0, "0.5": 0.0, "1": 0.0}
        canary = {le: 1.0 if float(le) < 0.3 else 0.0 for le in baseline}
        final = {"canary": histogram(40, canary), "baseline": histogram(40, baseline)}
        verdict = looks(g, final, n=3)
        assert (verdict.status is Verdict.FAIL) is (slow_share > 0), verdict.reason

    def test_each_origin_splits_its_weight_as_fixed_when_it_began(self) -> None:
        from shiprail.gates.compare import _together

        rest = 1 - SLOW_SHARE
        # Origin 0 (weight ½) has all three tests; the restart after look 5 (weight ½ / 10)
        # had no usable interval, so its count test takes the per-interval test's part too.
        assert _together({0: 10.0, 5: 100.0}, {0: 30.0}, {0: 4.0, 5: 1.0}, 10) == pytest.approx(
            0.5 * (rest / 2 * 40 + SLOW_SHARE * 4) + 0.05 * (rest * 100 + SLOW_SHARE * 1)
        )
        # A test thinned away leaves its part unused: nothing moves to the others.
        assert _together({0: 2.0}, {0: 2.0, 7: 40.0}, {0: 1.0}, 10) == pytest.approx(
            0.5 * (rest / 2 * 4 + SLOW_SHARE) + 0.05 * rest / 2 * 40
        )

    def test_no_buckets_or_no_traffic_is_inconclusive(self) -> None:
        assert run(self.G, {"canary": QueryResult(), "baseline": histogram(9000, self.STABLE)}).no_data
        assert run(
            self.G, {"canary": histogram(0, self.STABLE), "baseline": histogram(9000, self.STABLE)}
        ).no_data
        failed = {"canary": ERROR, "baseline": histogram(9000, self.STABLE)}
        assert run(self.G, failed).status is Verdict.INCONCLUSIVE

    @pytest.mark.parametrize(
        "spec", [{"histogram": "h", "query": "q"}, {"histogram": "h", "bad": "b", "total": "t"}]
    )
    def test_one_form_only(self, spec: dict[str, str]) -> None:
        with pytest.raises(ValueError, match="use one of"):
            gate(type="compare", **spec)


def verdict(status: Verdict, no_data: bool = False):  # type: ignore[no-untyped-def]
    from shiprail.gates import GateVerdict

    return GateVerdict(gate="g", status=status, reason=status.value, no_data=no_data)


class TestTracker:
    def test_first_failure_fails_by_default(self) -> None:
        t = GateTracker(name="g")
        t.record(verdict(Verdict.FAIL), THRESHOLD)
        assert t.failed

    def test_failure_limit_total(self) -> None:
        g = gate(type="threshold", query="x", max=1, failure_limit=2)
        t = GateTracker(name="g")
        for status in [Verdict.FAIL, Verdict.PASS, Verdict.FAIL, Verdict.PASS]:
            t.record(verdict(status), g)
        assert not t.failed
        t.record(verdict(Verdict.FAIL), g)
        assert t.failed and "3 failures, limit 2" in t.failure_reason

    def test_consecutive_forgives_isolated_failures(self) -> None:
        g = gate(type="threshold", query="x", max=1, failure_limit=1, consecutive=True)
        t = GateTracker(name="g")
        for status in [Verdict.FAIL, Verdict.PASS] * 5:
            t.record(verdict(status), g)
        assert not t.failed
        t.record(verdict(Verdict.FAIL), g)
        t.record(verdict(Verdict.FAIL), g)
        assert t.failed and "consecutive" in t.failure_reason

    def test_inconclusive_limit_fails_closed(self) -> None:
        g = gate(type="threshold", query="x", max=1, inconclusive_limit=2)
        t = GateTracker(name="g")
        for _ in range(2):
            t.record(verdict(Verdict.INCONCLUSIVE, no_data=True), g)
        assert not t.failed and not t.passing
        t.record(verdict(Verdict.INCONCLUSIVE, no_data=True), g)
        assert t.failed and "failing closed" in t.failure_reason

    def test_on_no_data_fail(self) -> None:
        g = gate(type="threshold", query="x", max=1, on_no_data="fail")
        t = GateTracker(name="g")
        t.record(verdict(Verdict.INCONCLUSIVE, no_data=True), g)
        assert t.failed

    def test_on_no_data_wait_never_passes_and_never_counts(self) -> None:
        g = gate(type="threshold", query="x", max=1, on_no_data="wait", inconclusive_limit=0)
        t = GateTracker(name="g")
        for _ in range(10):
            t.record(verdict(Verdict.INCONCLUSIVE, no_data=True), g)
        assert not t.failed and not t.passing and t.waits == 10
        assert step_outcome([t], bake_over=True) is StepOutcome.CONTINUE

    def test_step_needs_every_gate_passing_at_the_end(self) -> None:
        a, b = GateTracker(name="a"), GateTracker(name="b")
        a.record(verdict(Verdict.PASS), THRESHOLD)
        assert step_outcome([a, b], bake_over=True) is StepOutcome.CONTINUE  # b never evaluated
        b.record(verdict(Verdict.INCONCLUSIVE, no_data=True), THRESHOLD)
        assert step_outcome([a, b], bake_over=True) is StepOutcome.CONTINUE  # missing data never promotes
        b.record(verdict(Verdict.PASS), THRESHOLD)
        assert step_outcome([a, b], bake_over=False) is StepOutcome.CONTINUE
        assert step_outcome([a, b], bake_over=True) is StepOutcome.PASS
        b.record(verdict(Verdict.FAIL), THRESHOLD)
        assert step_outcome([a, b], bake_over=False) is StepOutcome.FAIL


@pytest.mark.parametrize(
    ("count", "shown"), [(19.6, "19.6"), (19.97, "19.9"), (4.0000001, "4"), (20.0, "20"), (1234.9, "1234")]
)
def test_a_short_count_is_never_rounded_up_to_what_was_needed(count: float, shown: str) -> None:
    # `increase()` extrapolates: 19.6 printed as "20" read "only 20 requests, 20 needed".
    assert too_few(count, "requests", 20) == f"only {shown} requests, 20 needed"


def test_an_interval_is_as_many_looks_long_as_the_time_since_the_last_weighed_look() -> None:
    """The count tests read the pods' wobble per look (`stats.wobble_share`): the first
    judged interval runs from the end of `initial_delay`, and a look that found no data, or
    a missed scrape, makes the next one longer."""
    from shiprail.gates.compare import _interval_length

    g = gate(type="compare", bad="errors", total="requests", initial_delay="1m", interval="30s")
    assert g.type == "compare"
    memory: dict[str, Any] = {}
    assert _interval_length(g, ctx(elapsed=90), memory) == pytest.approx(1.0)
    assert _interval_length(g, ctx(elapsed=120), memory) == pytest.approx(1.0)
    # The look at 150 s found no data and weighed nothing.
    assert _interval_length(g, ctx(elapsed=180), memory) == pytest.approx(2.0)
