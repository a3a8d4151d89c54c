"""Gate decision quality: `python -m bench.gates [--scenarios PATH] [--json OUT] [--repetitions N]`.

Replays each scenario's synthetic streams through every strategy (identical streams for all)
and reports, per scenario and strategy: false-rollback rate with a 95 % Wilson interval on
good releases; detection rate, median and p90 time to detect, and bad requests served
before detection (blast radius) on bad ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench._cli import output_file, positive
from bench.strategies import STRATEGIES, Strategy
from bench.streams import TICK, CorpusError, Scenario, Stream, generate, load_corpus

DEFAULT_CORPUS = Path(__file__).parent / "scenarios" / "default.yaml"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _bad_served(s: Scenario, st: Stream, until: int) -> float:
    """Requests the regression hurt before the decision: canary errors, or for a latency
    regression every canary request (each one is slower than it should be)."""
    column = st.requests if s.kind == "latency" else st.errors
    return float(column[0, st.regression_tick : until].sum())


def evaluate(s: Scenario, strategies: list[Strategy]) -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(s.seed)
    histogram_rng = np.random.default_rng([s.seed, 1])
    decisions: dict[str, list[int | None]] = {x.name: [] for x in strategies}
    served: dict[str, list[float]] = {x.name: [] for x in strategies}
    for _ in range(s.repetitions):
        stream = generate(s, rng, histogram_rng)
        for strategy in strategies:
            tick = strategy.run(s, stream)
            decisions[strategy.name].append(tick)
            served[strategy.name].append(_bad_served(s, stream, tick if tick is not None else s.ticks))
    report: dict[str, dict[str, Any]] = {}
    for name, ticks in decisions.items():
        fired = [t for t in ticks if t is not None]
        row: dict[str, Any] = {"runs": len(ticks), "rollbacks": len(fired)}
        if s.kind == "good":
            low, high = wilson(len(fired), len(ticks))
            row.update(false_rollback_rate=len(fired) / len(ticks), ci95=[low, high])
        else:
            delays = [(t - int(s.regression_start / TICK)) * TICK / 60 for t in fired]
            row.update(
                detection_rate=len(fired) / len(ticks),
                misses=len(ticks) - len(fired),
                ttd_median_min=float(np.median(delays)) if delays else None,
                ttd_p90_min=float(np.percentile(delays, 90)) if delays else None,
                bad_served_median=float(np.median(served[name])),
            )
        report[name] = row
    return report


def _evaluate_cell(scenario: Scenario) -> dict[str, dict[str, Any]]:
    return evaluate(scenario, STRATEGIES)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    names = [x.name for x in STRATEGIES]
    lines = ["### Good releases: false-rollback rate (95 % CI)", ""]
    lines += ["| scenario | runs | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for cell in results["scenarios"]:
        if cell["scenario"]["kind"] != "good":
            continue
        r = cell["strategies"]
        row = [
            f"{100 * r[n]['false_rollback_rate']:.2f}% ({100 * r[n]['ci95'][0]:.2f}–{100 * r[n]['ci95'][1]:.2f})"
            for n in names
        ]
        lines.append(f"| {cell['scenario']['name']} | {r[names[0]]['runs']} | " + " | ".join(row) + " |")
    lines += [
        "",
        "### Bad releases: detected · median / p90 minutes to detect · bad requests served (median)",
        "",
    ]
    lines += ["| scenario | runs | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for cell in results["scenarios"]:
        if cell["scenario"]["kind"] == "good":
            continue
        r = cell["strategies"]
        row = [
            f"{100 * r[n]['detection_rate']:.1f}% · {_fmt(r[n]['ttd_median_min'])}/{_fmt(r[n]['ttd_p90_min'])}"
            f" · {r[n]['bad_served_median']:.0f}"
            for n in names
        ]
        lines.append(f"| {cell['scenario']['name']} | {r[names[0]]['runs']} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gates", description=__doc__)
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_CORPUS, help="a corpus YAML file")
    parser.add_argument("--json", type=output_file, help="write the full results here")
    parser.add_argument(
        "--repetitions", type=positive, help="override every scenario's repetitions (smoke runs)"
    )
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument(
        "--jobs", type=positive, default=os.cpu_count() or 1, help="processes (default: every core)"
    )
    args = parser.parse_args(argv)
    try:
        corpus = load_corpus(args.scenarios)
    except CorpusError as exc:
        parser.exit(2, "".join(f"error: {issue}\n" for issue in exc.issues))
    if args.only:
        corpus = [s for s in corpus if args.only in s.name]
        if not corpus:
            parser.exit(2, f"error: --only: no scenario of {args.scenarios} has {args.only!r} in its name\n")
    if args.repetitions:
        corpus = [replace(s, repetitions=args.repetitions) for s in corpus]
    started = time.monotonic()
    cells = []
    # Cells are independent (each has its own seed), so they run on every core.
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for scenario, report in zip(corpus, pool.map(_evaluate_cell, corpus), strict=True):
            cells.append({"scenario": asdict(scenario), "strategies": report})
            print(
                f"  {scenario.name}: {scenario.repetitions} runs, {time.monotonic() - started:.0f}s",
                flush=True,
            )
    results = {"corpus": str(args.scenarios), "seconds": time.monotonic() - started, "scenarios": cells}
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
