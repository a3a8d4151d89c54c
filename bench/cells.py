"""Random scenario cells: `bench.gates --random-cells N --seed S`.

A corpus someone wrote can be tuned to, knowingly or not; cells drawn at random from wide
ranges of every scenario field cannot. Each range covers what a real service may show:
traffic from a quiet internal tool to a front door, a canary from 1 % to half the traffic,
almost no errors to a noisy dependency, per-arm noise from none to as large as the rates
themselves, scrapes missing up to 40 % of the time. The seed fixes the cells and their
streams, so a run can be repeated exactly and a claim names the run it rests on.
"""

from __future__ import annotations

import math

import numpy as np

from bench.streams import Scenario

KINDS = ("good", "error", "latency")
# Good cells are where the false-rollback promise is judged, and a rate near 1 % needs
# hundreds of runs per cell to bound; a detection delay's median needs far fewer.
GOOD_SHARE = 0.4
GOOD_RUNS, BAD_RUNS = 500, 80


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def draw(count: int, seed: int, good_runs: int = GOOD_RUNS, bad_runs: int = BAD_RUNS) -> list[Scenario]:
    """`count` cells; cell i's parameters and stream seed depend only on (seed, i)."""
    cells = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        kind = "good" if rng.random() < GOOD_SHARE else str(rng.choice(KINDS[1:]))
        duration = float(rng.choice([600.0, 1200.0, 1800.0]))
        fields: dict[str, object] = {
            "rpm": _log_uniform(rng, 20, 100_000),
            "canary_share": _log_uniform(rng, 0.01, 0.5),
            "base_error_rate": _log_uniform(rng, 0.0001, 0.05),
            "dispersion": float(rng.uniform(0, 1)),
            "missing": float(rng.uniform(0, 0.4)),
            "diurnal": bool(rng.random() < 0.3),
            "shock_probability": float(rng.uniform(0, 0.03)),
            "shock_factor": float(rng.uniform(2, 10)),
            "warmup": float(rng.uniform(0, 60)),
            "warmup_factor": float(rng.uniform(1, 5)),
            "latency_median_ms": _log_uniform(rng, 5, 500),
            "latency_sigma": float(rng.uniform(0.2, 1.0)),
            "duration": duration,
        }
        if kind != "good":
            fields["regression_start"] = float(rng.uniform(0, 0.5)) * duration
            fields["ramp"] = bool(rng.random() < 0.3)
        if kind == "error":
            fields["error_factor"] = _log_uniform(rng, 1.2, 10)
        elif kind == "latency":
            fields["latency_factor"] = _log_uniform(rng, 1.1, 3)
        effect = {
            "good": "",
            "error": f"-x{fields.get('error_factor', 1):.2g}",
            "latency": f"-x{fields.get('latency_factor', 1):.2g}",
        }[kind]
        cells.append(
            Scenario(
                name=f"r{i:03d}-{kind}{effect}",
                kind=kind,  # type: ignore[arg-type]
                repetitions=good_runs if kind == "good" else bad_runs,
                seed=seed * 100_003 + i,
                **fields,  # type: ignore[arg-type]
            )
        )
    return cells
