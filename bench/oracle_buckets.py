"""How much of a latency ratio is the histogram's and the noise's: times against three oracles.

The oracle the benchmark holds every strategy to reads the canary's share slower than
(1 + δ)·b as it is, which a histogram does not hold: with the default buckets, (1 + δ)·b
lies between two bounds twice or two and a half times apart, and the most a valid test
can read there is the chord between them (`bench.oracle`, `reading="buckets"`). Once a
regression has moved the canary's latency across a bucket, the chord can be far below the
true share, and no gate on the histogram can see what the exact oracle sees.

The oracle also knows the noise, which every gate must learn from the intervals it has
seen. `noise="learned"` is the same test as a t-test that reads its scale from the ticks
before the regression and since: how soon a fixed-horizon test that knew everything but
the noise could decide.

This reads a `bench.gates` result (JSON), redraws each latency and error cell's streams as
the run drew them, and reports, for one strategy, its median time to detect against the
oracle as `bench.oracle` has it now (beside the horizon the run stored, which an older
oracle may have set, and the one its normal model alone gives), against the oracle on
bucket counts (latency only) and against the oracle that learns its noise, cell by cell
and as the median over the latency cells of ×1.5 and more and the error cells of ×2 and
more. The exact oracle is the yardstick the targets are judged on; all three have their
power drawn as the generator draws streams (`bench.oracle_draws`). This says how much of what is left is the histogram's
resolution, and how much a fixed-horizon test would pay for the noise, and it holds a
result made before a change to the oracle against the oracle as it is.

    python -m bench.oracle_buckets bench/results/gates-random-2031.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.gates import shiprail_oracle
from bench.oracle import Oracle
from bench.streams import TICK, Scenario, generate

# The regressions the detection targets are set for: latency ×1.5 and more, errors ×2 and more.
LARGE = {"latency": 1.5, "error": 2.0}


@dataclass(frozen=True)
class Floors:
    scenario: str
    kind: str  # "latency" or "error"
    factor: float  # the regression: how much slower, or how many times the errors
    stored_s: float | None  # the oracle's median horizon (s) as the run reported it
    exact_s: float | None  # … and as `bench.oracle` has it now (its power drawn)
    modelled_s: float | None  # … and with its power from the normal model alone
    buckets_s: float | None  # … and that of the oracle on bucket counts (latency only)
    learned_s: float | None  # … and that of the oracle that reads its noise from the ticks
    detected_min: float | None  # the strategy's median time to detect over all runs (min)

    def ratio(self, horizon: float | None) -> float | None:
        """The strategy's median ÷ a horizon: ∞ where it missed what that oracle decides,
        None where that oracle never decides."""
        if horizon is None:
            return None
        return math.inf if self.detected_min is None else self.detected_min * 60 / horizon


def median_horizon(oracle: Oracle, s: Scenario) -> float | None:
    """The oracle's median decision (seconds after the regression's start) over the cell's
    streams, drawn as `bench.gates.evaluate` draws them: None where it never decides."""
    rng, histogram_rng = np.random.default_rng(s.seed), np.random.default_rng([s.seed, 1])
    seconds = []
    for _ in range(s.repetitions):
        stream = generate(s, rng, histogram_rng)
        tick = oracle.decision_tick(s, stream.missing)
        seconds.append(math.inf if tick is None else tick * TICK - s.regression_start)
    median = float(np.median(seconds)) if seconds else math.inf
    return median if math.isfinite(median) else None


def floors(result: dict[str, Any], strategy: str) -> list[Floors]:
    """Each latency and error cell of a `bench.gates` result, against each oracle."""
    exact = shiprail_oracle()
    modelled = replace(exact, power="modelled")
    buckets = replace(exact, reading="buckets")
    learned = replace(exact, noise="learned")
    out = []
    for cell in result["scenarios"]:
        s = Scenario(**cell["scenario"])
        row = cell["strategies"].get(strategy)
        if s.kind not in LARGE or row is None:
            continue
        if "ttd_median_all_min" not in row:
            raise ValueError(
                f"{s.name}: made before bench.gates timed strategies against the oracle; run it again"
            )
        stored = row.get("oracle_horizon_min")
        drawn = replace(s, repetitions=row["runs"])
        out.append(
            Floors(
                scenario=s.name,
                kind=s.kind,
                factor=s.latency_factor if s.kind == "latency" else s.error_factor,
                stored_s=None if stored is None else stored * 60,
                exact_s=median_horizon(exact, drawn),
                modelled_s=median_horizon(modelled, drawn),
                buckets_s=median_horizon(buckets, drawn) if s.kind == "latency" else None,
                learned_s=median_horizon(learned, drawn),
                detected_min=row.get("ttd_median_all_min"),
            )
        )
    return out


def _median(values: list[float | None]) -> tuple[float | None, int, int]:
    judged = [v for v in values if v is not None]
    if not judged:
        return None, 0, 0
    return float(np.median(judged)), sum(v <= 2 for v in judged), len(judged)


def _fmt(x: float | None) -> str:
    return "–" if x is None else ("∞" if math.isinf(x) else f"{x:.2f}×")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.oracle_buckets", description=__doc__)
    parser.add_argument("result", type=Path, help="a bench.gates result (JSON)")
    parser.add_argument("--strategy", default="shiprail", help="the strategy to report (shiprail)")
    parser.add_argument("--json", action="store_true", help="one JSON object per latency or error cell")
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.result.read_text())
        scenarios = result["scenarios"]
        if not any(args.strategy in c["strategies"] for c in scenarios):
            raise KeyError(args.strategy)
    except OSError as e:
        parser.exit(2, f"{args.result}: cannot read: {e.strerror}\n")
    except json.JSONDecodeError as e:
        parser.exit(2, f"{args.result}:{e.lineno}: not JSON: {e.msg}\n")
    except (KeyError, TypeError) as e:
        parser.exit(2, f"{args.result}: not a bench.gates result with strategy {args.strategy!r} ({e})\n")
    try:
        rows = floors(result, args.strategy)
    except (ValueError, TypeError, KeyError) as e:
        parser.exit(2, f"{args.result}: {e}\n")
    for f in rows:
        if args.json:
            print(
                json.dumps(
                    {
                        **f.__dict__,
                        "ratio": f.ratio(f.exact_s),
                        "ratio_modelled": f.ratio(f.modelled_s),
                        "ratio_buckets": f.ratio(f.buckets_s),
                        "ratio_learned": f.ratio(f.learned_s),
                    }
                )
            )
        else:
            print(
                f"{f.scenario:22s} oracle {_s(f.exact_s):>7} (run: {_s(f.stored_s):>7},"
                f" modelled: {_s(f.modelled_s):>7})  on buckets {_s(f.buckets_s):>7}  learning its noise {_s(f.learned_s):>7}"
                f"  {args.strategy} ÷ oracle {_fmt(f.ratio(f.exact_s)):>6}"
                f"  ÷ on buckets {_fmt(f.ratio(f.buckets_s)):>6}  ÷ learning {_fmt(f.ratio(f.learned_s)):>6}"
            )
    if args.json:
        return
    for kind, label_kind in (("latency", "latency"), ("error", "errors")):
        large = [f for f in rows if f.kind == kind and f.factor >= LARGE[kind]]
        if not large:
            continue
        yardsticks = [
            ("the oracle", lambda f: f.exact_s),
            ("the oracle the run used", lambda f: f.stored_s),
            ("the oracle's normal model", lambda f: f.modelled_s),
            ("the oracle on bucket counts", lambda f: f.buckets_s),
            ("the oracle that learns its noise", lambda f: f.learned_s),
        ]
        for label, pick in yardsticks if kind == "latency" else yardsticks[:3] + yardsticks[4:]:
            median, within, judged = _median([f.ratio(pick(f)) for f in large])
            print(
                f"{label_kind} ×{LARGE[kind]:g}+: {args.strategy}'s median time to detect ÷ {label}:"
                f" {_fmt(median)} ({within} of {judged} cells within 2×)"
            )
    sys.stdout.flush()


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.0f} s"


if __name__ == "__main__":
    main()
