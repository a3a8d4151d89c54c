"""Gate decision quality: `python -m bench.gates [--scenarios PATH | --random-cells N --seed S]
[--strategies NAMES] [--json OUT]`.

Replays each scenario's synthetic streams through every strategy (identical streams for all)
and reports, per scenario and strategy: false-rollback rate with a 95 % Wilson interval on
good releases; on bad ones, detection rate, median and p90 time to detect, bad requests
served before detection (blast radius), rollbacks before the regression began (false
rollbacks too), and the median time to detect as a multiple of the oracle's horizon (the
information floor, `bench.oracle`). Then, over all cells: each strategy's worst good cell,
its detection against the oracle, and how many cells it wins and loses against each other.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench._cli import output_file, positive, positive_float
from bench.cells import draw
from bench.oracle import Oracle
from bench.strategies import STRATEGIES, Shiprail, Strategy
from bench.streams import TICK, CorpusError, Scenario, Stream, first_regressed_tick, generate, load_corpus

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


def shiprail_oracle() -> Oracle:
    """The yardstick: level α = 0.01, and the tolerances a canary step asks for, 20 % more
    errors and 10 % slower latency (in latency, the canary at 1.1·b against the baseline
    at b). Fixed, so every run of every configuration is held against the same floor."""
    return Oracle(alpha=0.01, error_tolerance=0.2, latency_tolerance=0.1)


# A first step, when one is asked for, bakes this long: a typical first step of a plan.
FIRST_STEP_SECONDS = 600.0


def first_step(s: Scenario, share: float) -> Scenario:
    """The good step before a cell: the same service, `share` × the cell's canary share."""
    return replace(
        s,
        name=f"{s.name}-first-step",
        kind="good",
        error_factor=1.0,
        latency_factor=1.0,
        regression_start=0.0,
        ramp=False,
        duration=FIRST_STEP_SECONDS,
        canary_share=min(s.canary_share * share, 0.5),
    )


def evaluate(
    s: Scenario, strategies: list[Strategy], first_share: float | None = None
) -> dict[str, dict[str, Any]]:
    """Every strategy on the cell's streams. With `first_share`, shiprail's gates bake a good
    first step of the same service first (`first_step`, on streams of its own) and start the
    cell knowing what they learned there; a rollback in that step is a false rollback of
    the cell. The other strategies and the oracle see the cell alone."""
    rng = np.random.default_rng(s.seed)
    histogram_rng = np.random.default_rng([s.seed, 1])
    before = first_step(s, first_share) if first_share is not None else None
    before_rngs = (np.random.default_rng([s.seed, 7]), np.random.default_rng([s.seed, 8]))
    decisions: dict[str, list[int | None]] = {x.name: [] for x in strategies}
    served: dict[str, list[float]] = {x.name: [] for x in strategies}
    oracle = shiprail_oracle()
    oracle_seconds: list[float] = []
    for _ in range(s.repetitions):
        stream = generate(s, rng, histogram_rng)
        tick = oracle.decision_tick(s, stream.missing)
        oracle_seconds.append(math.inf if tick is None else tick * TICK - s.regression_start)
        earlier = generate(before, *before_rngs) if before is not None else None
        for strategy in strategies:
            if earlier is not None and before is not None and isinstance(strategy, Shiprail):
                fired, learned = strategy.learn(before, earlier)
                # Rolled back in the first step: before anything of the regression, tick 0.
                tick = 0 if fired is not None else strategy.run(s, stream, learned)
            else:
                tick = strategy.run(s, stream)
            decisions[strategy.name].append(tick)
            served[strategy.name].append(_bad_served(s, stream, tick if tick is not None else s.ticks))
    # The oracle's figure for the cell: its median decision over the same streams.
    oracle_median = float(np.median(oracle_seconds)) if oracle_seconds else math.inf
    horizon = oracle_median if math.isfinite(oracle_median) else None
    first = first_regressed_tick(s)
    report: dict[str, dict[str, Any]] = {}
    for name, ticks in decisions.items():
        fired = [t for t in ticks if t is not None]
        row: dict[str, Any] = {"runs": len(ticks), "rollbacks": len(fired)}
        if s.kind == "good":
            low, high = wilson(len(fired), len(ticks))
            row.update(false_rollback_rate=len(fired) / len(ticks), ci95=[low, high])
        else:
            # A decision at tick k has seen ticks before k: up to the first regressed tick it
            # has seen nothing of the regression, and that rollback would have happened to a
            # good release too. A detection's delay runs from the regression's start to the
            # end of the data it decided on, as the oracle's horizon does.
            early = [t for t in fired if t <= first]
            caught = [t for t in fired if t > first]
            delays = [(t * TICK - s.regression_start) / 60 for t in caught]
            # Misses and early rollbacks never detected the regression: the median over all
            # runs counts them as later than any detection.
            all_runs = sorted(delays) + [math.inf] * (len(ticks) - len(caught))
            median_all = float(np.median(all_runs))
            row.update(
                detection_rate=len(caught) / len(ticks),
                misses=len(ticks) - len(fired),
                early_rollbacks=len(early),
                ttd_median_min=float(np.median(delays)) if delays else None,
                ttd_p90_min=float(np.percentile(delays, 90)) if delays else None,
                ttd_median_all_min=median_all if math.isfinite(median_all) else None,
                bad_served_median=float(np.median(served[name])),
                oracle_horizon_min=horizon / 60 if horizon else None,
                oracle_ratio=(median_all * 60 / horizon) if horizon and math.isfinite(median_all) else None,
            )
        report[name] = row
    return report


def _evaluate_cell(job: tuple[Scenario, list[str], float | None]) -> dict[str, dict[str, Any]]:
    scenario, names, first_share = job
    return evaluate(scenario, [x for x in STRATEGIES if x.name in names], first_share)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio_text(row: dict[str, Any]) -> str:
    if row.get("oracle_horizon_min") is None:
        return "–"
    return "∞" if row["oracle_ratio"] is None else f"{row['oracle_ratio']:.2f}×"


# The bad cells the detection targets are stated for: how large a regression must be
# before "fast" is asked of a gate (smaller ones are reported, not judged).
TARGET_GROUPS: dict[str, tuple[str, str, float]] = {
    "errors ×2 and larger": ("error", "error_factor", 2.0),
    "latency ×1.5 and larger": ("latency", "latency_factor", 1.5),
}
TARGET_RATIO = 2.0
# The promise on good releases: a cell's false-rollback rate at most 1 %, with the upper end
# of its 95 % interval at most 2 %.
GOOD_TARGET, GOOD_BOUND = 0.01, 0.02


def undecided(cell: dict[str, Any]) -> list[str]:
    """The strategies a good cell leaves undecided against the promise: a rate within the
    target whose interval still reaches past its bound. 200 runs bound a cell under 2 %
    only if none of them rolled back; one rollback takes about 280, and more runs, not a
    looser reading, are what tell a rare rollback from a cell that breaks the promise."""
    if cell["scenario"]["kind"] != "good":
        return []
    return [
        name
        for name, row in cell["strategies"].items()
        if row["false_rollback_rate"] <= GOOD_TARGET and row["ci95"][1] > GOOD_BOUND
    ]


def _beats(a: dict[str, Any], b: dict[str, Any], kind: str) -> int:
    """+1 when strategy row a does better than b on a cell, −1 when worse, 0 for a tie.
    Good cells: fewer false rollbacks. Bad cells: the smaller median time to detect over
    all runs (misses and early rollbacks counted as never)."""
    if kind == "good":
        x, y = a["false_rollback_rate"], b["false_rollback_rate"]
        return (x < y) - (x > y)
    x, y = a["ttd_median_all_min"], b["ttd_median_all_min"]
    x, y = (math.inf if x is None else x), (math.inf if y is None else y)
    return (x < y) - (x > y)


def summarize(cells: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Over all cells: each strategy's worst good cell, its detection against the oracle on
    the target groups, its early rollbacks, and its wins and losses against each other."""
    good = [c for c in cells if c["scenario"]["kind"] == "good"]
    bad = [c for c in cells if c["scenario"]["kind"] != "good"]
    per: dict[str, Any] = {}
    for name in names:
        row: dict[str, Any] = {}
        if good:
            worst = max(
                good, key=lambda c: (c["strategies"][name]["false_rollback_rate"], c["scenario"]["name"])
            )
            w = worst["strategies"][name]
            runs = sum(c["strategies"][name]["runs"] for c in good)
            fired = sum(c["strategies"][name]["rollbacks"] for c in good)
            row["worst_good"] = {
                "cell": worst["scenario"]["name"],
                "false_rollback_rate": w["false_rollback_rate"],
                "ci95": w["ci95"],
                "runs": w["runs"],
            }
            widest = max(good, key=lambda c: (c["strategies"][name]["ci95"][1], c["scenario"]["name"]))
            row["widest_good"] = {
                "cell": widest["scenario"]["name"],
                "false_rollback_rate": widest["strategies"][name]["false_rollback_rate"],
                "ci95": widest["strategies"][name]["ci95"],
                "runs": widest["strategies"][name]["runs"],
            }
            row["confirmed"] = [
                {
                    "cell": c["scenario"]["name"],
                    "first_pass": [c["first_pass"]["strategies"][name]["rollbacks"], c["first_pass"]["runs"]],
                    "confirmed": [c["strategies"][name]["rollbacks"], c["strategies"][name]["runs"]],
                }
                for c in good
                if "first_pass" in c and name in c["first_pass"]["strategies"]
            ]
            row["good_overall"] = {
                "runs": runs,
                "false_rollback_rate": fired / runs,
                "ci95": wilson(fired, runs),
            }
        if bad:
            row["early_rollbacks"] = sum(c["strategies"][name]["early_rollbacks"] for c in bad)
            row["bad_runs"] = sum(c["strategies"][name]["runs"] for c in bad)
        groups = {}
        for label, (kind, factor, least) in TARGET_GROUPS.items():
            judged = [
                c
                for c in bad
                if c["scenario"]["kind"] == kind
                and c["scenario"][factor] >= least
                and c["strategies"][name]["oracle_horizon_min"] is not None
            ]
            if not judged:
                continue
            ratios = [c["strategies"][name]["oracle_ratio"] for c in judged]
            finite = [math.inf if r is None else r for r in ratios]
            worst_cell = max(
                judged,
                key=lambda c: (
                    math.inf
                    if c["strategies"][name]["oracle_ratio"] is None
                    else c["strategies"][name]["oracle_ratio"]
                ),
            )
            groups[label] = {
                "cells": len(judged),
                "median_ratio": float(np.median(finite)),
                "within_target": sum(r <= TARGET_RATIO for r in finite),
                "worst_ratio": max(finite) if math.isfinite(max(finite)) else None,
                "worst_cell": worst_cell["scenario"]["name"],
                "detection_rate": float(np.mean([c["strategies"][name]["detection_rate"] for c in judged])),
            }
        row["oracle"] = groups
        row["versus"] = {
            other: {
                "wins": sum(
                    _beats(c["strategies"][name], c["strategies"][other], c["scenario"]["kind"]) > 0
                    for c in cells
                ),
                "losses": sum(
                    _beats(c["strategies"][name], c["strategies"][other], c["scenario"]["kind"]) < 0
                    for c in cells
                ),
            }
            for other in names
            if other != name
        }
        per[name] = row
    return per


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def summary_markdown(summary: dict[str, Any], names: list[str]) -> str:
    lines = ["### Worst good cell: false-rollback rate (95 % CI)", ""]
    lines += [
        "| strategy | worst cell | rate (95 % CI) | all good runs (95 % CI) | early rollbacks on bad cells |"
    ]
    lines += ["|---|---|---:|---:|---:|"]
    for name in names:
        row = summary[name]
        if "worst_good" not in row:
            continue
        w, o = row["worst_good"], row["good_overall"]
        early = f"{row.get('early_rollbacks', 0)} of {row.get('bad_runs', 0)}"
        lines.append(
            f"| {name} | {w['cell']} | {_pct(w['false_rollback_rate'])} ({_pct(w['ci95'][0])}–{_pct(w['ci95'][1])})"
            f" | {_pct(o['false_rollback_rate'])} ({_pct(o['ci95'][0])}–{_pct(o['ci95'][1])}) | {early} |"
        )
    widest = [
        f"| {name} | {w['cell']} | {w['runs']:,} | {_pct(w['false_rollback_rate'])}"
        f" ({_pct(w['ci95'][0])}–{_pct(w['ci95'][1])}) |"
        for name in names
        if (w := summary[name].get("widest_good"))
    ]
    if widest:
        lines += ["", "### Good cell with the highest upper 95 % bound", ""]
        lines += ["| strategy | cell | runs | rate (95 % CI) |", "|---|---|---:|---:|", *widest]
    confirmed = [
        f"| {name} | {c['cell']} | {c['first_pass'][0]} of {c['first_pass'][1]:,}"
        f" | {c['confirmed'][0]} of {c['confirmed'][1]:,} |"
        for name in names
        for c in summary[name].get("confirmed", [])
    ]
    if confirmed:
        lines += ["", "### Undecided good cells run again (`--confirm`): rolled back", ""]
        lines += ["| strategy | cell | first pass | confirmed |", "|---|---|---:|---:|", *confirmed]
    for label in TARGET_GROUPS:
        lines += ["", f"### {label}: median time to detect ÷ the oracle's horizon", ""]
        lines += [
            "| strategy | cells | median ratio | cells within 2× | worst (cell) | detected |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in names:
            g = summary[name]["oracle"].get(label)
            if not g:
                continue
            worst = "∞" if g["worst_ratio"] is None else f"{g['worst_ratio']:.2f}×"
            median = "∞" if not math.isfinite(g["median_ratio"]) else f"{g['median_ratio']:.2f}×"
            lines.append(
                f"| {name} | {g['cells']} | {median} | {g['within_target']} | {worst} ({g['worst_cell']})"
                f" | {_pct(g['detection_rate'])} |"
            )
    lines += [
        "",
        "### Cells won–lost against each other (good cells: fewer false rollbacks; bad: sooner)",
        "",
    ]
    lines += ["| strategy | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name in names:
        versus = summary[name]["versus"]
        cells = [
            ("–" if other == name else f"{versus[other]['wins']}–{versus[other]['losses']}")
            for other in names
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(results: dict[str, Any]) -> str:
    names = [x.name for x in STRATEGIES if x.name in results["scenarios"][0]["strategies"]]
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
        "### Bad releases: detected · median / p90 minutes to detect · bad requests served (median)"
        " · median ÷ oracle",
        "",
    ]
    lines += [
        "| scenario | runs | oracle (min) | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for cell in results["scenarios"]:
        if cell["scenario"]["kind"] == "good":
            continue
        r = cell["strategies"]
        row = [
            f"{100 * r[n]['detection_rate']:.1f}% · {_fmt(r[n]['ttd_median_min'])}/{_fmt(r[n]['ttd_p90_min'])}"
            f" · {r[n]['bad_served_median']:.0f} · {_ratio_text(r[n])}"
            + (f" · {r[n]['early_rollbacks']} early" if r[n]["early_rollbacks"] else "")
            for n in names
        ]
        oracle = _fmt(r[names[0]]["oracle_horizon_min"])
        lines.append(
            f"| {cell['scenario']['name']} | {r[names[0]]['runs']} | {oracle} | " + " | ".join(row) + " |"
        )
    summary = results.get("summary") or summarize(results["scenarios"], names)
    lines += ["", summary_markdown(summary, names)]
    return "\n".join(lines) + "\n"


def _confirm(
    pool: ProcessPoolExecutor,
    corpus: list[Scenario],
    cells: list[dict[str, Any]],
    names: list[str],
    first_share: float | None,
    runs: int,
    started: float,
) -> None:
    """Run the undecided good cells again at `runs` runs (same seed: their first runs see the
    same streams) and put those figures in their place; each keeps what the first pass
    found under `first_pass`."""
    chosen = [(s, c) for s, c in zip(corpus, cells, strict=True) if undecided(c) and s.repetitions < runs]
    print(
        f"  confirming {len(chosen)} undecided good cell(s) at {runs:,} runs",
        file=sys.stderr,
        flush=True,
    )
    scenarios = [replace(s, repetitions=runs) for s, _ in chosen]
    jobs = [(scenario, names, first_share) for scenario in scenarios]
    for (_, cell), scenario, report in zip(chosen, scenarios, pool.map(_evaluate_cell, jobs), strict=True):
        cell["first_pass"] = {"runs": cell["scenario"]["repetitions"], "strategies": cell["strategies"]}
        cell["scenario"], cell["strategies"] = asdict(scenario), report
        fired = ", ".join(f"{name} {report[name]['rollbacks']}" for name in names)
        print(
            f"  {scenario.name}: {runs:,} runs ({fired} rolled back), {time.monotonic() - started:.0f}s",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gates", description=__doc__)
    parser.add_argument("--scenarios", type=Path, help=f"a corpus YAML file (default: {DEFAULT_CORPUS.name})")
    parser.add_argument(
        "--random-cells",
        type=positive,
        metavar="N",
        help="draw N cells from wide ranges instead (bench/cells.py)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of --random-cells (default 1)")
    parser.add_argument("--json", type=output_file, help="write the full results here")
    parser.add_argument(
        "--repetitions", type=positive, help="override every scenario's repetitions (smoke runs)"
    )
    parser.add_argument(
        "--good-repetitions",
        type=positive,
        metavar="N",
        help="override the good scenarios' repetitions only: 185 or more can still show a false-rollback"
        " rate's upper 95 %% bound under 2 %%",
    )
    parser.add_argument(
        "--first-step",
        type=positive_float,
        metavar="SHARE",
        help="shiprail's gates first bake a good 10-minute step of each cell at SHARE × its canary share"
        " and start the cell knowing the noise they learned there, as a rollout's next step does",
    )
    parser.add_argument(
        "--confirm",
        type=positive,
        metavar="N",
        help="run each good cell that some strategy leaves undecided against the promise (a rate"
        " within 1 %% whose upper 95 %% bound is over 2 %%) again at N runs, its first runs on the same"
        " streams, and report those",
    )
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    known = [x.name for x in STRATEGIES]
    parser.add_argument(
        "--strategies",
        metavar="NAMES",
        default=",".join(known),
        help=f"comma-separated strategies to run (default all: {','.join(known)})",
    )
    parser.add_argument(
        "--jobs", type=positive, default=os.cpu_count() or 1, help="processes (default: every core)"
    )
    args = parser.parse_args(argv)
    if args.random_cells and args.scenarios:
        parser.exit(2, "error: --random-cells and --scenarios: give one of them\n")
    if args.seed < 0:
        parser.exit(2, f"error: --seed: must be 0 or more, not {args.seed}\n")
    source = f"--random-cells {args.random_cells} --seed {args.seed}" if args.random_cells else ""
    if args.random_cells:
        corpus = draw(args.random_cells, args.seed)
    else:
        path = args.scenarios or DEFAULT_CORPUS
        source = str(path)
        try:
            corpus = load_corpus(path)
        except CorpusError as exc:
            parser.exit(2, "".join(f"error: {issue}\n" for issue in exc.issues))
    if args.only:
        corpus = [s for s in corpus if args.only in s.name]
        if not corpus:
            parser.exit(2, f"error: --only: no scenario of {source} has {args.only!r} in its name\n")
    names = [name.strip() for name in args.strategies.split(",") if name.strip()]
    if unknown := [name for name in names if name not in known]:
        parser.exit(2, f"error: --strategies: no strategy {unknown[0]!r}; there are {', '.join(known)}\n")
    if not names:
        parser.exit(2, f"error: --strategies: name at least one of {', '.join(known)}\n")
    names = [name for name in known if name in names]
    if args.repetitions:
        corpus = [replace(s, repetitions=args.repetitions) for s in corpus]
    if args.good_repetitions:
        corpus = [replace(s, repetitions=args.good_repetitions) if s.kind == "good" else s for s in corpus]
    started = time.monotonic()
    cells = []
    total = sum(s.repetitions for s in corpus)
    done = 0
    # Cells are independent (each has its own seed), so they run on every core.
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        jobs = [(scenario, names, args.first_step) for scenario in corpus]
        for scenario, report in zip(corpus, pool.map(_evaluate_cell, jobs), strict=True):
            cells.append({"scenario": asdict(scenario), "strategies": report})
            done += scenario.repetitions
            # Each cell's rollbacks as it ends, so an hour-long run that is stopped early has
            # still said what it found.
            fired = ", ".join(f"{name} {report[name]['rollbacks']}" for name in names)
            print(
                f"  {scenario.name}: {scenario.repetitions} runs ({done:,} of {total:,}),"
                f" {time.monotonic() - started:.0f}s; rolled back: {fired}",
                file=sys.stderr,  # progress: `> report.md` keeps only the report
                flush=True,
            )
        if args.confirm:
            _confirm(pool, corpus, cells, names, args.first_step, args.confirm, started)
    results = {
        "corpus": source + (f" --first-step {args.first_step:g}" if args.first_step else ""),
        "seconds": time.monotonic() - started,
        "shiprail_gates": {k: v for k, v in Shiprail().raw.items()},
        "oracle": asdict(shiprail_oracle()),
        "scenarios": cells,
        "summary": summarize(cells, names),
    }
    print()
    print(summary_markdown(results["summary"], names) if args.random_cells else markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
