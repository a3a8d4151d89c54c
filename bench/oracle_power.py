"""How much power the oracle's test really has at its horizon.

The oracle (`bench.oracle`) finds its horizon from a normal model of its statistic, with the
generator's common-mode noise (the shared wobble and the shocks) counted to first order. This
draws the statistic itself, many times, as the generator draws a stream
(`bench.streams.generate`), and reports the share of draws its fixed-horizon test rejects at
the horizon and one tick before, against a critical value drawn the same way under the null.
On a latency cell: Poisson requests, the shared wobble with cv = dispersion/3, shocks
doubling both medians for three ticks, each arm's own wobble with cv = dispersion/6 and the
regression on the canary's median, at the one bound the oracle decides the cell on; the
null has the canary exactly (1 + δ)× slower. On an error cell: Poisson requests, both
arms' rates times the shared wobble (cv = dispersion) and the shocks, each arm's own wobble
(cv = dispersion/2) and the regression on the canary's rate; the null has the canary's
rate exactly (1 + δ)× the baseline's. Power near 99 % at the horizon and below it a tick
earlier means the horizon is what the test needs: the yardstick is neither lenient nor
out of reach.

    python -m bench.oracle_power --seed 2029 --runs 2000
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from bench._cli import positive
from bench.cells import draw
from bench.gates import shiprail_oracle
from bench.oracle import POWER, Oracle
from bench.streams import TICK, Scenario, _factor


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
    t, requests, used = oracle.layout(s)
    ticks = np.flatnonzero(used[:tick])
    if not len(ticks):
        return None
    if bound is not None:
        slower = _factor(s, s.latency_factor, t)[ticks]
        tolerated = np.full(len(ticks), 1 + oracle.latency_tolerance)
        null = _statistic(s, oracle, bound, requests[:, ticks], tolerated, runs, rng)
        truth = _statistic(s, oracle, bound, requests[:, ticks], slower, runs, rng)
    else:
        worse = _factor(s, s.error_factor, t)[ticks]
        null = _error_statistic(s, oracle, requests[:, ticks], None, runs, rng)
        truth = _error_statistic(s, oracle, requests[:, ticks], worse, runs, rng)

    def rejected(column: int) -> float:
        if column < 0:
            return 0.0
        critical = np.quantile(null[:, column], 1 - oracle.alpha)
        return float(np.mean(truth[:, column] > critical))

    return Power(s.name, tick, bound, rejected(len(ticks) - 1), rejected(len(ticks) - 2))


def _statistic(
    s: Scenario,
    oracle: Oracle,
    bound: float,
    requests: np.ndarray,
    slower: np.ndarray,
    runs: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """D = the canary's share slower than (1 + δ)·bound − the baseline's slower than bound,
    over the ticks read so far: runs × ticks."""
    n = requests.shape[1]
    counts = rng.poisson(requests[None], size=(runs, 2, n))
    # A shock starting at a tick doubles both medians for it and the next two.
    starts = rng.random((runs, n + 2)) < s.shock_probability
    shocked = starts[:, 2:] | starts[:, 1:-1] | starts[:, :-2]
    median = s.latency_median_ms * _gamma(rng, s.dispersion / 3, (runs, n)) * np.where(shocked, 2.0, 1.0)
    arms = median[:, None] * _gamma(rng, s.dispersion / 6, (runs, 2, n))
    arms[:, 0] *= slower
    at = np.array([bound * (1 + oracle.latency_tolerance), bound])[None, :, None]
    beyond = 1.0 - ndtr((np.log(at) - np.log(arms)) / s.latency_sigma)
    slow = rng.binomial(counts, beyond)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.cumsum(slow, axis=2) / np.cumsum(counts, axis=2)
    statistic: np.ndarray = np.nan_to_num(shares[:, 0] - shares[:, 1], nan=0.0)
    return statistic


def _error_statistic(
    s: Scenario,
    oracle: Oracle,
    requests: np.ndarray,
    worse: np.ndarray | None,
    runs: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """D = the canary's share of errors − (1 + δ)× the baseline's, over the ticks read so
    far: runs × ticks. `worse` is the canary's rate over the baseline's per tick; None
    draws the null, the canary's rate exactly (1 + δ)× the baseline's."""
    n = requests.shape[1]
    tolerated = 1 + oracle.error_tolerance
    counts = rng.poisson(requests[None], size=(runs, 2, n))
    # A shock starting at a tick multiplies both arms' rates for it and the next two.
    starts = rng.random((runs, n + 2)) < s.shock_probability
    shocked = starts[:, 2:] | starts[:, 1:-1] | starts[:, :-2]
    common = _gamma(rng, s.dispersion, (runs, n)) * np.where(shocked, s.shock_factor, 1.0)
    rates = s.base_error_rate * common[:, None] * _gamma(rng, s.dispersion / 2, (runs, 2, n))
    rates[:, 0] *= tolerated if worse is None else worse
    errors = rng.binomial(counts, np.clip(rates, 0.0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.cumsum(errors, axis=2) / np.cumsum(counts, axis=2)
    statistic: np.ndarray = np.nan_to_num(shares[:, 0] - tolerated * shares[:, 1], nan=0.0)
    return statistic


def _gamma(rng: np.random.Generator, cv: float, shape: tuple[int, ...]) -> np.ndarray:
    if cv <= 0:
        return np.ones(shape)
    k = 1.0 / cv**2
    result: np.ndarray = rng.gamma(k, 1.0 / k, size=shape)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.oracle_power", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="the random cells' seed (bench.gates --seed)")
    parser.add_argument("--cells", type=positive, default=200, help="how many random cells to draw (200)")
    parser.add_argument("--runs", type=positive, default=2000, help="draws of the statistic per cell (2000)")
    parser.add_argument("--json", action="store_true", help="one JSON object per cell")
    args = parser.parse_args(argv)
    oracle, rng = shiprail_oracle(), np.random.default_rng(args.seed)
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
