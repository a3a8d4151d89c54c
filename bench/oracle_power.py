"""How much power the oracle's test really has at its horizon, on draws of its own.

The yardstick (`bench.oracle`, `power="drawn"`) puts its horizon where its test, drawn as
the generator draws streams (`bench.oracle_draws`), rejects in 99 % of draws. This draws
the statistic again with another seed and reports the share of draws the test rejects at
the horizon and one tick before, against a critical value drawn the same way under the
null: about 99 % at the horizon and less a tick before means the horizon is what the test
needs, neither lenient nor out of reach. `--power modelled` checks the horizon the normal
model alone gives (the oracle before it drew), which claims power the test does not have
on quiet cells. `--reading buckets` and `--noise learned` check the other two oracles
`bench.oracle_buckets` reports, drawn the same way.

    python -m bench.oracle_power --seed 2029 --runs 2000 [--power modelled]
        [--reading buckets] [--noise learned]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace

import numpy as np

from bench._cli import positive
from bench.cells import draw
from bench.gates import shiprail_oracle
from bench.oracle import NOISES, POWER, POWERS, READINGS, Oracle
from bench.oracle_draws import powers
from bench.streams import TICK, Scenario


@dataclass(frozen=True)
class Power:
    scenario: str
    horizon_tick: int
    bound_ms: float | None  # the bound a latency cell is decided on; None for errors
    at_horizon: float  # the share of draws the test rejects with the data up to its horizon
    tick_before: float  # … and with one tick less


def power(oracle: Oracle, s: Scenario, runs: int, rng: np.random.Generator) -> Power | None:
    """The oracle's test on `runs` draws of a latency or error cell, or None where it never
    decides."""
    tick = oracle.horizon_tick(s)
    bound = oracle.latency_bound(s) if s.kind == "latency" else None
    if tick is None or (s.kind == "latency" and bound is None):
        return None
    ticks, rejected = powers(oracle, s, bound, tick, runs, rng)
    if not len(ticks):
        return None
    before = float(rejected[-2]) if len(ticks) > 1 else 0.0
    return Power(s.name, tick, bound, float(rejected[-1]), before)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.oracle_power", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="the random cells' seed (bench.gates --seed)")
    parser.add_argument("--cells", type=positive, default=200, help="how many random cells to draw (200)")
    parser.add_argument("--runs", type=positive, default=2000, help="draws of the statistic per cell (2000)")
    parser.add_argument(
        "--power",
        choices=POWERS,
        default="drawn",
        help="the horizon checked: the yardstick's (drawn) or the normal model's (modelled)",
    )
    parser.add_argument(
        "--reading",
        choices=READINGS,
        default="exact",
        help="the canary's latency share as it is (exact) or as a histogram holds it (buckets)",
    )
    parser.add_argument(
        "--noise",
        choices=NOISES,
        default="known",
        help="a test that knows the noise (known) or a t-test that reads its scale (learned)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per cell")
    args = parser.parse_args(argv)
    oracle = replace(shiprail_oracle(), power=args.power, reading=args.reading, noise=args.noise)
    rng = np.random.default_rng(args.seed)
    found: dict[str, list[Power]] = {"latency": [], "error": []}
    for s in draw(args.cells, args.seed):
        if s.kind not in found:
            continue
        p = power(oracle, s, args.runs, rng)
        if p is None:
            continue
        found[s.kind].append(p)
        if args.json:
            print(json.dumps({"kind": s.kind, **p.__dict__}))
        else:
            where = "errors" if p.bound_ms is None else f"bound {p.bound_ms:g} ms"
            print(
                f"{p.scenario:22s} horizon {p.horizon_tick * TICK - s.regression_start:7.0f} s  {where}"
                f"  power {p.at_horizon:6.1%} (a tick before: {p.tick_before:6.1%})"
            )
    for kind, cells in found.items():
        if cells and not args.json:
            at = sorted(p.at_horizon for p in cells)
            print(
                f"{len(cells)} {kind} cells the oracle decides: power at its horizon median {np.median(at):.1%}, "
                f"lowest {at[0]:.1%}; {sum(p.at_horizon >= POWER for p in cells)} at or above {POWER:.0%}"
            )


if __name__ == "__main__":
    main()
