"""A smoke run of the gate benchmark: its corpus loads, and its strategies decide sanely."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gates import DEFAULT_CORPUS, evaluate, markdown, wilson
from bench.strategies import STRATEGIES, FlaggerStyle, Shiprail
from bench.streams import Scenario, load_corpus


def test_default_corpus_covers_the_required_cells() -> None:
    corpus = load_corpus(DEFAULT_CORPUS)
    kinds = {s.kind for s in corpus}
    assert kinds == {"good", "error", "latency"}
    assert all(s.repetitions >= 2000 for s in corpus if s.kind == "good")
    assert len({s.seed for s in corpus}) == len(corpus), "cells must not share random streams"


def test_unknown_corpus_field_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.yaml"
    bad.write_text("scenarios:\n  - {name: x, error_factr: 2}\n")
    with pytest.raises(ValueError, match="error_factr"):
        load_corpus(bad)


def test_shiprail_catches_a_gross_regression_and_passes_a_quiet_good_release() -> None:
    common = {"duration": 600.0, "repetitions": 5, "shock_probability": 0.0, "missing": 0.0}
    bad = Scenario(name="x20", kind="error", error_factor=20, seed=1, **common)
    good = Scenario(name="quiet", kind="good", seed=2, **common)
    caught = evaluate(bad, [Shiprail()])["shiprail"]
    assert caught["detection_rate"] == 1.0 and caught["ttd_median_min"] < 5
    assert evaluate(good, [Shiprail()])["shiprail"]["rollbacks"] == 0


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
