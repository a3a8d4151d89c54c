"""A smoke run of the gate benchmark: its corpus loads, and its strategies decide sanely."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cells import draw
from bench.gates import DEFAULT_CORPUS, evaluate, first_step, markdown, shiprail_oracle, wilson
from bench.gates import main as gates_main
from bench.oracle import Oracle, _chord
from bench.oracle_buckets import main as oracle_buckets_main
from bench.oracle_buckets import median_horizon
from bench.oracle_power import main as oracle_power_main
from bench.oracle_power import power
from bench.orchestrator import main as orchestrator_main
from bench.strategies import SHIPRAIL_GATES, STRATEGIES, FlaggerStyle, Shiprail
from bench.streams import (
    BUCKETS_MS,
    CorpusError,
    Scenario,
    _factor,
    first_regressed_tick,
    generate,
    load_corpus,
)


def test_default_corpus_covers_the_required_cells() -> None:
    corpus = load_corpus(DEFAULT_CORPUS)
    kinds = {s.kind for s in corpus}
    assert kinds == {"good", "error", "latency"}
    assert all(s.repetitions >= 2000 for s in corpus if s.kind == "good")
    assert len({s.seed for s in corpus}) == len(corpus), "cells must not share random streams"


def test_unknown_corpus_field_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.yaml"
    bad.write_text("scenarios:\n  - {name: x, error_factr: 2}\n")
    with pytest.raises(CorpusError) as error:
        load_corpus(bad)
    assert [str(i) for i in error.value.issues] == [f"{bad}:2: scenarios[0].error_factr: unknown field"]


def test_every_corpus_problem_is_reported_at_once_where_it_is_set(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.yaml"
    bad.write_text(
        "defaults:\n"
        "  duration: 30q\n"
        "scenarios:\n"
        "  - {name: a, seed: 1}\n"
        "  - name: b\n"
        "    kind: bad\n"
        "    canary_share: 1.5\n"
        "  - {name: c, rpm: fast}\n"
        "  - just-a-string\n"
        "  - {name: d, duration: 5m, regression_start: 10m}\n"
        "  - {name: e, 5: 2}\n"
    )
    with pytest.raises(CorpusError) as error:
        load_corpus(bad)
    found = {(i.line, i.field): i.message for i in error.value.issues}
    # The inherited bad duration is reported once, at the default, not once per scenario.
    assert sorted(found) == [
        (2, "defaults.duration"),
        (6, "scenarios[1].kind"),
        (7, "scenarios[1].canary_share"),
        (8, "scenarios[2].rpm"),
        (9, "scenarios[3]"),
        (10, "scenarios[4]"),
        (11, "scenarios[5]"),
    ]
    assert "30q" in found[(2, "defaults.duration")]
    assert found[(9, "scenarios[3]")] == "a scenario is a mapping of fields"
    assert "regression_start (600 s) must be before the end of the step" in found[(10, "scenarios[4]")]
    assert found[(11, "scenarios[5]")] == "field names are words, not 5"


def test_problems_come_in_the_order_of_the_file_and_an_inherited_one_once(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.yaml"
    bad.write_text("defaults: {rpmm: 5}\nscenarios:\n  - {name: x, 5: 2}\n  - {name: y}\n  - {name: z}\n")
    with pytest.raises(CorpusError) as error:
        load_corpus(bad)
    assert [(i.line, i.field, i.message) for i in error.value.issues] == [
        (1, "defaults.rpmm", "unknown field"),
        (3, "scenarios[0]", "field names are words, not 5"),
    ]


def test_a_corpus_that_is_not_yaml_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.yaml"
    bad.write_text("scenarios:\n  - {name: x\n  - {name: y}\n")
    with pytest.raises(CorpusError, match=r"corpus.yaml:3: YAML syntax error"):
        load_corpus(bad)


def test_durations_read_as_in_plans() -> None:
    assert Scenario(name="x", duration="1h30m", warmup="45s").duration == 5400  # type: ignore[arg-type]


def test_bad_input_exits_2_naming_it_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "corpus.yaml"
    bad.write_text("scenarios:\n  - {name: x, rpm: -5}\n")
    cases = [
        (
            gates_main,
            ["--scenarios", str(bad)],
            f"error: {bad}:2: scenarios[0].rpm: Input should be greater than 0",
        ),
        (gates_main, ["--only", "no-such-cell"], "no scenario"),
        (gates_main, ["--random-cells", "3", "--scenarios", str(bad)], "give one of them"),
        (gates_main, ["--random-cells", "3", "--seed", "-1"], "--seed: must be 0 or more"),
        (gates_main, ["--random-cells", "0"], "--random-cells: expected a whole number of at least 1"),
        (gates_main, ["--repetitions", "0"], "--repetitions: expected a whole number of at least 1"),
        (
            gates_main,
            ["--good-repetitions", "-3"],
            "--good-repetitions: expected a whole number of at least 1",
        ),
        (gates_main, ["--strategies", "shiprail,kayanta"], "--strategies: no strategy 'kayanta'; there are"),
        (gates_main, ["--strategies", ","], "--strategies: name at least one of"),
        (gates_main, ["--json", str(tmp_path / "missing" / "out.json")], "no folder"),
        (gates_main, ["--first-step", "0"], "--first-step: expected a number above 0"),
        (
            orchestrator_main,
            ["--rollback-runs", "0"],
            "--rollback-runs: expected a whole number of at least 1",
        ),
        (
            orchestrator_main,
            ["--actuator-latency-ms", "0"],
            "--actuator-latency-ms: expected a number above 0",
        ),
    ]
    for main, argv, message in cases:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, argv
        assert message in err and "Traceback" not in err, err


def test_shiprail_catches_a_gross_regression_and_passes_a_quiet_good_release() -> None:
    common = {"duration": 600.0, "repetitions": 5, "shock_probability": 0.0, "missing": 0.0}
    bad = Scenario(name="x20", kind="error", error_factor=20, seed=1, **common)
    good = Scenario(name="quiet", kind="good", seed=2, **common)
    caught = evaluate(bad, [Shiprail()])["shiprail"]
    assert caught["detection_rate"] == 1.0 and caught["ttd_median_min"] < 5
    assert evaluate(good, [Shiprail()])["shiprail"]["rollbacks"] == 0


def test_a_first_step_hands_shiprail_the_noise_it_learned() -> None:
    """`--first-step`: a good step of the same service at a share of the cell's, on streams of
    its own, whose learned noise the cell's bake starts from; a rollback there counts."""
    busy = Scenario(
        name="busy",
        kind="latency",
        latency_factor=1.6,
        rpm=20_000,
        canary_share=0.2,
        dispersion=0.3,
        regression_start=300.0,
        duration=600.0,
        repetitions=4,
        seed=9,
    )
    before = first_step(busy, 2.0)
    assert (before.kind, before.canary_share, before.duration, before.latency_factor) == (
        "good",
        0.4,
        600.0,
        1.0,
    )
    assert first_step(busy, 5.0).canary_share == 0.5
    strategy = Shiprail({"latency": SHIPRAIL_GATES["latency"]})
    rng = np.random.default_rng(1)
    fired, learned = strategy.learn(before, generate(before, rng, rng))
    assert fired is None and learned["latency"]["intervals"]
    report = evaluate(busy, [strategy], first_share=1.0)["shiprail"]
    assert report["detection_rate"] == 1.0 and report["early_rollbacks"] == 0


def test_flagger_style_counts_missing_data_as_failed_checks() -> None:
    blind = Scenario(name="blind", kind="good", duration=600.0, missing=1.0, repetitions=3, seed=3)
    report = evaluate(blind, [FlaggerStyle()])["flagger"]
    assert report["false_rollback_rate"] == 1.0


def test_report_has_every_strategy_and_an_interval() -> None:
    tiny = Scenario(name="tiny", kind="good", duration=300.0, repetitions=2, seed=4)
    cells = [{"scenario": tiny.__dict__, "strategies": evaluate(tiny, STRATEGIES)}]
    table = markdown({"scenarios": cells})
    assert all(s.name in table for s in STRATEGIES)
    low, high = wilson(10, 1000)
    assert 0.004 < low < 0.01 < high < 0.02


def test_two_scenarios_may_not_share_a_name(tmp_path: Path) -> None:
    # Cells are reported by name: a second one of the same name would hide the first.
    bad = tmp_path / "corpus.yaml"
    bad.write_text("scenarios:\n  - {name: x, seed: 1}\n  - {name: x, seed: 2}\n")
    with pytest.raises(
        CorpusError, match=r":3: scenarios\[1\]\.name: 'x' is already the name of another scenario"
    ):
        load_corpus(bad)


def test_a_repeated_name_is_placed_at_its_own_entry_after_a_broken_one(tmp_path: Path) -> None:
    # The broken first entry yields no scenario; the repeat is still the file's third entry.
    bad = tmp_path / "corpus.yaml"
    bad.write_text(
        "scenarios:\n  - {name: y, rpm: -1}\n  - {name: x}\n  - {name: x}\n  - {name: z, duration: 5s}\n"
    )
    with pytest.raises(CorpusError) as error:
        load_corpus(bad)
    assert [(i.line, i.field) for i in error.value.issues] == [
        (2, "scenarios[0].rpm"),
        (4, "scenarios[2].name"),
        (5, "scenarios[3].duration"),
    ]
    assert "greater than or equal to 10" in error.value.issues[-1].message


def test_random_cells_are_reproducible_and_span_the_ranges() -> None:
    cells = draw(60, seed=5)
    assert [c.name for c in cells] == [c.name for c in draw(60, seed=5)]
    assert [c.rpm for c in cells] != [c.rpm for c in draw(60, seed=6)]
    assert {c.kind for c in cells} == {"good", "error", "latency"}
    assert min(c.rpm for c in cells) < 100 and max(c.rpm for c in cells) > 10_000
    assert all(0.01 <= c.canary_share <= 0.5 and 0 <= c.dispersion <= 1 and c.missing <= 0.4 for c in cells)
    assert any(c.regression_start > 0 for c in cells if c.kind != "good")


class _Trigger:
    """Rolls back at the first tick, whatever it sees."""

    name = "trigger"

    def run(self, s: Scenario, st: object) -> int | None:
        return 1


def test_a_rollback_before_the_regression_began_is_a_false_rollback_not_a_detection() -> None:
    late = Scenario(
        name="late", kind="error", error_factor=5, regression_start=300.0, duration=600.0, repetitions=3
    )
    row = evaluate(late, [_Trigger()])["trigger"]  # type: ignore[list-item]
    assert row["early_rollbacks"] == 3 and row["detection_rate"] == 0.0 and row["ttd_median_min"] is None


class _At:
    """Rolls back at a chosen tick, whatever it sees."""

    name = "at"

    def __init__(self, tick: int) -> None:
        self.tick = tick

    def run(self, s: Scenario, st: object) -> int | None:
        return self.tick


def test_a_detection_is_timed_from_the_regression_start_once_its_data_has_been_seen() -> None:
    # Tick i is generated at 10·i s: a regression from 305 s first shows in tick 31 (310 s),
    # and a decision at tick k has seen ticks 0 … k − 1.
    late = Scenario(
        name="late", kind="error", error_factor=5, regression_start=305.0, duration=600.0, repetitions=2
    )
    assert first_regressed_tick(late) == 31
    assert list(_factor(late, 5.0, np.array([300.0, 310.0]))) == [1.0, 5.0]
    blind = evaluate(late, [_At(31)])["at"]  # type: ignore[list-item]
    assert blind["early_rollbacks"] == 2 and blind["detection_rate"] == 0.0
    seen = evaluate(late, [_At(32)])["at"]  # type: ignore[list-item]
    assert seen["early_rollbacks"] == 0 and seen["ttd_median_min"] == pytest.approx((320 - 305) / 60)


def test_the_oracle_never_decides_on_no_evidence() -> None:
    # A narrow distribution leaves both arms' shares at 0 past its far bounds; a shift inside
    # the tolerance gives no test anything to decide on, there or anywhere.
    narrow = Scenario(
        name="n", kind="latency", latency_median_ms=8.5, latency_sigma=0.2, latency_factor=1.05, rpm=50_000
    )
    assert shiprail_oracle().horizon(narrow) is None


def test_the_oracle_reads_its_data_through_the_same_scrapes_as_the_strategies() -> None:
    oracle = shiprail_oracle()
    cell = Scenario(name="x", kind="error", error_factor=3, rpm=30_000, duration=3600.0)
    tick = oracle.horizon_tick(cell)
    assert tick is not None and oracle.horizon(cell) == tick * 10.0
    missing = np.zeros(cell.ticks, dtype=bool)
    assert oracle.decision_tick(cell, missing) == tick
    # A look at tick k finds nothing when the scrape of tick k − 1 is missing.
    missing[tick - 1 : tick + 2] = True
    assert oracle.decision_tick(cell, missing) == tick + 3
    missing[tick - 1 :] = True
    assert oracle.decision_tick(cell, missing) is None


def test_the_oracle_needs_less_time_with_more_traffic_and_never_decides_a_good_release() -> None:
    oracle = shiprail_oracle()
    times = [
        oracle.horizon(Scenario(name="x", kind="error", error_factor=3, rpm=rpm, duration=3600.0))
        for rpm in (10_000, 30_000, 100_000)
    ]
    assert all(t is not None for t in times) and times[0] > times[1] > times[2]  # type: ignore[operator]
    assert oracle.horizon(Scenario(name="g", kind="good")) is None


def test_a_run_of_chosen_strategies_reports_only_them(capsys: pytest.CaptureFixture[str]) -> None:
    gates_main(
        [
            "--random-cells",
            "2",
            "--seed",
            "3",
            "--repetitions",
            "2",
            "--jobs",
            "1",
            "--strategies",
            "kayenta,shiprail",
        ]
    )
    out = capsys.readouterr().out
    assert "| kayenta |" in out and "| shiprail |" in out and "flagger" not in out


def test_a_random_cell_run_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    gates_main(["--random-cells", "3", "--seed", "2", "--repetitions", "2", "--jobs", "1"])
    out, err = capsys.readouterr()
    assert "Cells won–lost against each other" in out and "shiprail" in out
    assert "r000-good: 2 runs (2 of 6)" in err and "of 6)" not in out  # progress apart from the report
    # Each cell's rollbacks by strategy, as it ends.
    progress = next(line for line in err.splitlines() if "r000-good" in line)
    fired = dict(part.rsplit(" ", 1) for part in progress.split("rolled back: ")[1].split(", "))
    assert set(fired) == {strategy.name for strategy in STRATEGIES}
    assert all(int(n) in (0, 1, 2) for n in fired.values())


def test_good_repetitions_override_only_the_good_cells(capsys: pytest.CaptureFixture[str]) -> None:
    run = ["--random-cells", "3", "--seed", "2", "--repetitions", "2", "--good-repetitions", "3"]
    gates_main([*run, "--jobs", "1", "--strategies", "kayenta"])
    err = capsys.readouterr().err
    runs = dict(re.findall(r"  (r\d{3}-\S+): (\d+) runs", err))
    assert runs and all(n == ("3" if name.endswith("-good") else "2") for name, n in runs.items()), err
    assert any(name.endswith("-good") for name in runs) and not all(name.endswith("-good") for name in runs)


def test_the_oracles_test_has_about_its_power_at_its_horizon_and_less_a_tick_before() -> None:
    # Drawn again with a seed of its own, the statistic the oracle decides on: at its horizon
    # its test rejects in about 99 % of draws, and with a tick less data fewer, so the
    # horizon is neither lenient nor out of reach. The normal model alone had a median of
    # 98.3 % here and left quiet cells far short (`test_the_oracle_draws_its_power_…`).
    oracle, rng = shiprail_oracle(), np.random.default_rng(11)
    found = [
        p for s in draw(120, 17) if s.kind == "latency" and (p := power(oracle, s, 1000, rng)) is not None
    ]
    assert len(found) >= 15
    at_horizon = float(np.median([p.at_horizon for p in found]))
    tick_before = float(np.median([p.tick_before for p in found]))
    assert 0.985 <= at_horizon <= 0.999, at_horizon
    assert tick_before < 0.985, tick_before
    # The bound it decides on is one of the histogram's.
    assert {p.bound_ms for p in found} <= {float(b) for b in BUCKETS_MS}


def test_the_oracle_draws_its_power_where_the_normal_model_overstates_it() -> None:
    # A quiet canary (15 requests a minute, two or three a tick) and a tight distribution
    # slowed ×2.6: the normal model says a tick or two of data give the test 99 % power, but
    # a bound's share over three requests is far from normal and the test drawn there
    # rejects in fewer draws. The yardstick's horizon is where the drawn test has it.
    quiet = Scenario(
        name="q",
        kind="latency",
        rpm=150.0,
        canary_share=0.1,
        latency_sigma=0.3,
        latency_factor=2.6,
        dispersion=0.4,
        regression_start=300.0,
        duration=1200.0,
    )
    drawn, modelled = shiprail_oracle(), replace(shiprail_oracle(), power="modelled")
    a, b = drawn.horizon_tick(quiet), modelled.horizon_tick(quiet)
    assert a is not None and b is not None and a > b, (a, b)
    short = power(modelled, quiet, 4000, np.random.default_rng(5))
    full = power(drawn, quiet, 4000, np.random.default_rng(5))
    assert short is not None and full is not None
    assert short.at_horizon < 0.97 and full.at_horizon >= 0.98, (short, full)
    # Drawn again, one horizon for the cell, and the bound it was reached at.
    assert drawn.horizon_tick(quiet) == a and drawn.latency_bound(quiet) in {float(x) for x in BUCKETS_MS}
    with pytest.raises(ValueError, match="power"):
        Oracle(alpha=0.01, error_tolerance=0.2, latency_tolerance=0.1, power="guessed")


@pytest.mark.parametrize(
    ("other", "kinds"),
    [({"reading": "buckets"}, {"latency"}), ({"noise": "learned"}, {"latency", "error"})],
    ids=["buckets", "learned"],
)
def test_the_oracles_on_bucket_counts_and_learning_their_noise_are_drawn_too(
    other: dict[str, str], kinds: set[str]
) -> None:
    # The two other yardsticks have their power drawn as the exact one does: at their
    # horizons their tests reject in about 99 % of draws of their own. Neither decides much
    # sooner than the exact oracle: the chord is held to the null a histogram's reader must
    # hold (a power-law tail, where the chord is exact) and never to the lognormal's chord,
    # which lies under the null's true share and made a chord oracle "decide" 9 ticks before
    # the exact one; the t-test has Student's critical value, not a drawn one that knows the
    # noise. Each is later than the exact one on some cells: what the histogram and the
    # noise cost.
    exact = shiprail_oracle()
    oracle, rng = replace(exact, **other), np.random.default_rng(11)
    found, later = [], 0
    for s in draw(120, 17):
        if s.kind not in kinds:
            continue
        e, o = exact.horizon_tick(s), oracle.horizon_tick(s)
        if o is None:
            continue
        assert e is not None and o >= e - 5, (s.name, e, o)
        later += o > e
        if (p := power(oracle, s, 1000, rng)) is not None:
            found.append(p.at_horizon)
    assert len(found) >= 20 and later >= 10, (len(found), later)
    assert 0.985 <= float(np.median(found)) <= 0.999 and min(found) >= 0.95, sorted(found)


def test_the_oracles_error_test_has_its_power_at_its_horizon_shocks_and_all() -> None:
    # Error cells, drawn as the generator draws them, shared wobble and shocks included. The
    # common-mode noise cancels under the null and a shock only raises the canary's excess,
    # so the horizon leaves both out of what the power needs. Counting them (as it once did,
    # under the null as well) it decided 6 of these cells instead of 10, and rejected in a
    # median 99.85 % of draws by its horizon: a yardstick lenient on every shocked cell.
    oracle, rng = shiprail_oracle(), np.random.default_rng(12)
    found = [p for s in draw(120, 17) if s.kind == "error" and (p := power(oracle, s, 1000, rng)) is not None]
    assert len(found) >= 8
    at_horizon = float(np.median([p.at_horizon for p in found]))
    assert 0.95 <= at_horizon <= 0.997, at_horizon
    assert all(p.bound_ms is None for p in found)


def test_the_oracle_power_check_prints_a_summary_and_refuses_bad_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    oracle_power_main(["--seed", "3", "--cells", "40", "--runs", "200"])
    out = capsys.readouterr().out
    assert re.search(r"\d+ latency cells the oracle decides: power at its horizon median \d", out)
    assert re.search(r"\d+ error cells the oracle decides: power at its horizon median \d", out)
    with pytest.raises(SystemExit) as exit_:
        oracle_power_main(["--seed", "3", "--runs", "0"])
    assert exit_.value.code == 2 and "--runs" in capsys.readouterr().err


def test_the_oracle_on_bucket_counts_reads_the_chord_a_histogram_holds_and_is_never_sooner() -> None:
    # (1 + δ)·b is never a bucket bound: a histogram holds the canary's share there only
    # between the bounds around it, and the chord of log share there lies under a
    # lognormal's true share. An oracle reading the chord has less to go on.
    exact = replace(shiprail_oracle(), power="modelled")
    buckets = replace(exact, reading="buckets")
    s = Scenario(name="x", kind="latency", latency_factor=2.0, latency_median_ms=180.0, latency_sigma=0.3)
    median = np.array([180.0, 360.0])
    read = _chord(s, 275.0, median)
    assert read is not None
    share, _, _ = read
    true = 1 - np.array([_phi_at(275.0, m, 0.3) for m in median])
    s_lo, s_hi = (1 - np.array([_phi_at(b, m, 0.3) for m in median]) for b in (250.0, 500.0))
    u = math.log(275 / 250) / math.log(2)
    assert np.allclose(share, s_lo ** (1 - u) * s_hi**u)
    assert np.all(share < true) and share[1] < 0.9 * true[1]
    assert _chord(s, 11000.0, median) is None  # beyond the last bound: nothing to read
    later = 0
    for cell in draw(200, 17):
        if cell.kind == "good":
            continue
        e, b = exact.horizon_tick(cell), buckets.horizon_tick(cell)
        if cell.kind == "error":
            assert e == b, cell.name  # errors are counted, not read between bounds
            continue
        assert e is not None or b is None, cell.name
        if e is not None and b is not None:
            # A chord's wobble can be a little smaller than the true share's: a tick at most.
            assert b >= e - 1, cell.name
        later += b is None or (e is not None and b > e)
    assert later >= 20
    with pytest.raises(ValueError, match="reading"):
        Oracle(alpha=0.01, error_tolerance=0.2, latency_tolerance=0.1, reading="quantiles")


def test_the_oracle_that_learns_its_noise_pays_most_where_few_ticks_precede_the_regression() -> None:
    # A t-test reads its scale from the ticks before the regression and those since: with
    # many before it is nearly the z-test, with none it spends its first ticks on the scale.
    from bench.oracle import _t_critical

    critical, extra = _t_critical(0.01, 10_000)
    assert critical == pytest.approx(2.326, abs=0.01) and extra == pytest.approx(2.326, abs=0.01)
    few, many = _t_critical(0.01, 3), _t_critical(0.01, 30)
    assert sum(few) > sum(many) > 4.65
    known = replace(shiprail_oracle(), power="modelled")
    learned = replace(known, noise="learned")
    base = Scenario(
        name="x",
        kind="latency",
        rpm=2000.0,
        canary_share=0.3,
        latency_factor=2.0,
        warmup=0.0,
        duration=1200.0,
    )
    late, early = replace(base, regression_start=600.0), replace(base, regression_start=0.0)
    assert learned.horizon_tick(late) == known.horizon_tick(late)
    k, e = known.horizon_tick(early), learned.horizon_tick(early)
    assert k is not None and e is not None and e > k
    slower = 0
    for cell in draw(200, 17):
        a, b = known.horizon_tick(cell), learned.horizon_tick(cell)
        if a is not None:
            assert b is None or b >= a, cell.name  # never sooner than the test that knows
        slower += a is not None and (b is None or b > a)
    assert slower >= 20
    with pytest.raises(ValueError, match="noise"):
        Oracle(alpha=0.01, error_tolerance=0.2, latency_tolerance=0.1, noise="guessed")


def _phi_at(bound: float, median: float, sigma: float) -> float:
    from scipy.special import ndtr

    return float(ndtr((math.log(bound) - math.log(median)) / sigma))


def test_the_bucket_floor_report_holds_a_result_against_both_oracles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exact = shiprail_oracle()
    decided = (
        (cell, horizon)
        for c in draw(200, 2029)
        if c.kind == "latency"
        and c.latency_factor >= 1.5
        and (horizon := median_horizon(exact, cell := replace(c, repetitions=5))) is not None
    )
    scenarios = []
    for i in range(3):
        cell, horizon = next(decided)
        # A strategy twice as slow as the oracle, then one that missed, then one as fast.
        detected = [2 * horizon / 60, None, horizon / 60][i]
        row = {"runs": 5, "oracle_horizon_min": horizon / 60, "ttd_median_all_min": detected}
        scenarios.append({"scenario": asdict(cell), "strategies": {"shiprail": row}})
    # An error cell whose run stored a horizon twice the oracle's now (an older oracle's):
    # the report holds it against the oracle as it is, and says what the run used.
    error = next(
        (cell, horizon)
        for c in draw(200, 2029)
        if c.kind == "error"
        and c.error_factor >= 2
        and (horizon := median_horizon(exact, cell := replace(c, repetitions=5))) is not None
    )
    row = {"runs": 5, "oracle_horizon_min": 2 * error[1] / 60, "ttd_median_all_min": error[1] / 60}
    scenarios.append({"scenario": asdict(error[0]), "strategies": {"shiprail": row}})
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"scenarios": scenarios}))
    oracle_buckets_main([str(result), "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["ratio"] for r in rows] == pytest.approx([2.0, math.inf, 1.0, 1.0])
    assert rows[3]["kind"] == "error" and rows[3]["buckets_s"] is None
    assert rows[3]["stored_s"] == pytest.approx(2 * rows[3]["exact_s"])
    for r in rows[:3]:
        assert r["stored_s"] == pytest.approx(r["exact_s"])
    for r in rows:
        # The bucket and learning oracles have less to go on than the exact one, their power
        # drawn the same way: within the draws' tick or two, never sooner.
        assert r["buckets_s"] is None or r["buckets_s"] >= r["exact_s"] - 20
        assert r["learned_s"] is None or r["learned_s"] >= r["exact_s"] - 20
    oracle_buckets_main([str(result)])
    out = capsys.readouterr().out
    assert (
        "latency ×1.5+: shiprail's median time to detect ÷ the oracle: 2.00× (2 of 3 cells within 2×)" in out
    )
    assert "÷ the oracle on bucket counts:" in out
    assert "÷ the oracle's normal model:" in out
    assert "÷ the oracle that learns its noise:" in out
    assert "errors ×2+: shiprail's median time to detect ÷ the oracle: 1.00× (1 of 1 cells within 2×)" in out
    assert "errors ×2+: shiprail's median time to detect ÷ the oracle the run used: 0.50×" in out
    # Bad input: exit 2, the file named, no traceback.
    for text, message in (("{", ":1: not JSON"), ('{"scenarios": []}', "not a bench.gates result")):
        result.write_text(text)
        with pytest.raises(SystemExit) as exit_:
            oracle_buckets_main([str(result)])
        assert exit_.value.code == 2 and str(result) in (err := capsys.readouterr().err) and message in err
    # A result from before the benchmark timed strategies against the oracle.
    del scenarios[0]["strategies"]["shiprail"]["ttd_median_all_min"]
    result.write_text(json.dumps({"scenarios": scenarios}))
    with pytest.raises(SystemExit) as exit_:
        oracle_buckets_main([str(result)])
    assert exit_.value.code == 2 and "run it again" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        oracle_buckets_main([str(tmp_path / "missing.json")])
    assert exit_.value.code == 2 and "cannot read" in capsys.readouterr().err


def test_confirm_runs_the_undecided_good_cells_again_on_the_same_streams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    run = [
        "--random-cells",
        "3",
        "--seed",
        "2",
        "--repetitions",
        "2",
        "--jobs",
        "1",
        "--strategies",
        "kayenta",
    ]
    gates_main([*run, "--confirm", "5", "--json", str(out)])
    err = capsys.readouterr().err
    cells = json.loads(out.read_text())["scenarios"]
    good = [c for c in cells if c["scenario"]["kind"] == "good"]
    # Two runs bound no cell under 2 %: every good cell is undecided and runs again at 5.
    assert good and all(
        c["first_pass"]["runs"] == 2 and c["strategies"]["kayenta"]["runs"] == 5 for c in good
    )
    assert all(
        "first_pass" not in c and c["strategies"]["kayenta"]["runs"] == 2 for c in cells if c not in good
    )
    assert f"confirming {len(good)} undecided good cell(s) at 5 runs" in err
    summary = json.loads(out.read_text())["summary"]["kayenta"]
    assert [c["cell"] for c in summary["confirmed"]] == [c["scenario"]["name"] for c in good]
    assert summary["widest_good"]["runs"] == 5


def test_a_decided_good_cell_is_not_confirmed() -> None:
    from bench.gates import undecided

    def cell(kind: str, rate: float, upper: float) -> dict[str, Any]:
        row = {"false_rollback_rate": rate, "ci95": [0.0, upper]}
        return {"scenario": {"kind": kind}, "strategies": {"a": row}}

    assert undecided(cell("good", 0.005, 0.0276)) == ["a"]  # 1 of 200
    assert undecided(cell("good", 0.0, 0.0188)) == []  # 0 of 200: within the bound
    assert undecided(cell("good", 0.05, 0.09)) == []  # over the target: decided, against it
    assert undecided(cell("latency", 0.0, 1.0)) == []
