"""The sequential test behind `compare`'s counts and histogram forms. Pure: numbers in, numbers out.

At every look the gate reads each arm's counts since the step's evidence began, as raw
cumulative vectors (Prometheus' `increase` over a growing window). A `Reading` also says
how each tested quantity (a key: "errors", or one histogram bound) is made of those raw
numbers, so the same map reads the whole window, one interval, or the counts since any
earlier look, consistently.

Three things make the test keep its promise on real traffic:

* **over-dispersion**: each key's counts are divided by a dispersion factor measured from
  the intervals seen so far (`stats.dispersion`), so a busy service's ordinary pod-to-pod
  wobble is not taken for a regression;
* **restarts**: a regression that begins late is diluted by the good minutes before it in a
  test that began with the step. A fresh test starts at every look and the gate mixes them
  with fixed weights, half on the test from the start and half spread over the planned
  looks. Each test is an e-process from where it starts, so the mixture is one too and
  Ville's bound still holds (e-detectors, Shin, Ramdas & Rinaldo 2023). Every restart of
  the last `YOUNG_RESTARTS` looks is kept and older ones are thinned dyadically, so memory
  grows with the logarithm of the looks. A restart reads the noise from every interval's
  pairs or from its own window's, whichever says less: a regression that began at its
  origin is a change of level, and every interval's pairs count that step as noise;
* **running maximum**: the p-value is 1 / the largest mixture seen at any look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shiprail.gates.stats import (
    Pair,
    PairSums,
    add_pair,
    dispersion_table,
    learned_pairs,
    log_e_values,
    observe_interval,
)

# How sure the dispersion bound is not to read a key's noise too low. Since pairs that agree
# by chance no longer pull the bound to φ = 1 (`stats.dispersion`), a miss is a modest
# underestimate, not a collapse, and 0.90 is as safe as 0.95 was on the busiest good cells.
DISPERSION_ASSURANCE = 0.90
START_WEIGHT = 0.5
# A step starts knowing at most this many pairs of the steps before it (`learned_noise`):
# 30 degrees of freedom (a pair's χ² has about ⅔ of one), as much as the histogram's
# per-interval test carries (`intervals.CARRIED_FREEDOM`), so a step whose pods wobble more
# than the last one's soon reads its own.
CARRIED_PAIRS = 45.0
# A regression is usually caught within a few dozen looks of its start; the restarts made
# near it are the ones that see it undiluted, so none of the recent ones is thinned away.
YOUNG_RESTARTS = 16


@dataclass(frozen=True)
class Key:
    """One tested quantity: the canary's count is Σ weight · canary[index], the baseline's
    is baseline[index]."""

    canary: tuple[tuple[int, float], ...]
    baseline: int

    def counts(self, canary: list[float], baseline: list[float]) -> tuple[float, float]:
        c = sum(w * canary[i] for i, w in self.canary)
        return max(c, 0.0), max(baseline[self.baseline], 0.0)


@dataclass(frozen=True)
class Reading:
    """Raw cumulative numbers of each arm at this look; the last of each is its traffic."""

    canary: list[float]
    baseline: list[float]
    keys: dict[str, Key]


@dataclass(frozen=True)
class Weighing:
    # Each retained test's e-value (its mean over the keys), by the look it began after
    # (0: the step's start, where the evidence begins).
    tests: dict[int, float]
    strongest: str | None  # the key with the most evidence now, None if none is worse
    dispersion: dict[str, float]


def restart_weight(origin: int, planned_looks: int) -> float:
    """A test's weight in the mixture, fixed before it begins: half on the test from the
    step's start, half spread over the planned looks."""
    return START_WEIGHT if origin == 0 else (1 - START_WEIGHT) / max(planned_looks, 1)


def mixture(tests: dict[int, float], planned_looks: int) -> float:
    """The weighted sum of the tests' e-values: an e-process, since each test is one from
    where it begins and the weights sum to at most 1."""
    return sum(restart_weight(origin, planned_looks) * e for origin, e in tests.items())


def _minus(a: list[float], b: list[float]) -> list[float]:
    return [max(x - y, 0.0) for x, y in zip(a, b, strict=True)]


def compact(x: float) -> float:
    """Ten significant digits, for what a restart keeps: a gate's memory travels with every
    heartbeat, and its sums need no more (10⁻³ of a request in ten million)."""
    return float(f"{x:.10g}")


def kept(mark: int, look: int) -> bool:
    """Dyadic thinning: past `YOUNG_RESTARTS` looks, a restart made `age` looks ago survives
    if its look is a multiple of 2^(⌊log₂ age⌋ − 1), so about two per power of two remain,
    and once dropped it never comes back (the modulus only grows)."""
    age = look - mark
    if age < YOUNG_RESTARTS:
        return True
    return mark % (1 << (int(math.log2(age)) - 1)) == 0


def weigh(
    memory: dict[str, Any],
    reading: Reading,
    *,
    max_increase: float,
    prior_strength: float,
    planned_looks: int,
    length: float = 1.0,
) -> Weighing:
    """One look: fold the interval since the last look into the dispersion estimates, weigh
    the evidence of every retained test, and keep what the next look needs in `memory`.
    `length` is the interval's, in looks (a missed scrape makes it longer)."""
    import numpy as np

    look = int(memory.get("looks", 0)) + 1
    memory["looks"] = look
    width = len(reading.canary)
    last = memory.get("last") or [[0.0] * width, [0.0] * len(reading.baseline)]
    if len(last[0]) != width or len(last[1]) != len(reading.baseline):
        # The histogram gained or lost a bucket (a relabel): start the evidence afresh.
        memory.clear()
        memory["looks"] = look
        last = [[0.0] * width, [0.0] * len(reading.baseline)]
    step_c, step_b = _minus(reading.canary, last[0]), _minus(reading.baseline, last[1])
    states: dict[str, Any] = memory.setdefault("dispersion", {})
    carried: dict[str, list[float]] = memory.get("carried") or {}
    added: dict[str, Pair] = {}
    for name, key in reading.keys.items():
        if name not in states:
            # A key starts from the pairs the steps before it saw, if any.
            states[name] = {"carried": carried[name]} if name in carried else {}
        pair = observe_interval(states[name], *key.counts(step_c, step_b), length)
        if pair is not None:
            added[name] = pair
    memory["last"] = [list(reading.canary), list(reading.baseline)]

    # A mark is [look, canary, baseline, pairs inside its window]: a restart's cumulative
    # numbers at its origin, and the pair sums of each key since (marks older than that
    # field have none).
    marks: list[list[Any]] = memory.setdefault("marks", [])
    _fold_inside(marks, added, look)
    origins = [(0, [0.0] * width, [0.0] * len(reading.baseline))]
    planned = max(planned_looks, 1)
    origins += [(int(m[0]), m[1], m[2]) for m in marks]
    names = list(reading.keys)
    phi = _noise(states, marks, names)
    phis = {name: float(phi[0, col]) for col, name in enumerate(names)}
    if not names:
        return Weighing({}, None, phis)
    # Counts since each origin, as matrices: rows are origins, columns keys.
    now_c, now_b = np.asarray(reading.canary, dtype=float), np.asarray(reading.baseline, dtype=float)
    since_c = np.maximum(now_c - np.array([o[1] for o in origins], dtype=float), 0.0)
    since_b = np.maximum(now_b - np.array([o[2] for o in origins], dtype=float), 0.0)
    mix = np.zeros((width, len(names)))
    for col, name in enumerate(names):
        for i, w in reading.keys[name].canary:
            mix[i, col] += w
    canary_counts = np.maximum(since_c @ mix, 0.0)
    baseline_counts = since_b[:, [reading.keys[n].baseline for n in names]]
    traffic = since_c[:, -1] + since_b[:, -1]
    own = np.divide(since_c[:, -1], traffic, out=np.full(len(origins), 0.5), where=traffic > 0)
    # A router's weight holds for the whole step, so no restart's window really gives the
    # canary less than half the share of traffic the step does. Where one reads so, its
    # traffic is the difference of two `increase` readings that Prometheus extrapolated each
    # on its own, and they can say the canary served nothing in a window where it failed a
    # request: a share near 0 made that one error of a good canary proof of a regression
    # (p = 3·10⁻⁹). Read at half the step's share, such a window asks for more evidence.
    own[1:] = np.maximum(own[1:], 0.5 * own[0])
    shares = np.where(traffic > 0, own * (1 + max_increase) / (1 + own * max_increase), 0.5)
    c, b = canary_counts / phi, baseline_counts / phi
    share = shares[:, None]
    worse = (c + b > 0) & (c > share * (c + b))
    log_e = log_e_values(b, c, np.clip(share, 1e-12, 1 - 1e-12), prior_strength, where=worse)
    # A look where the canary is not worse never counts against it: dropping it (e = 0)
    # keeps each test below its own e-process, so the bound still holds.
    e = np.where(worse, np.exp(np.minimum(log_e, 700.0)), 0.0)
    weights = np.array([restart_weight(o[0], planned) for o in origins])
    tests = {o[0]: float(x) for o, x in zip(origins, e.mean(axis=1), strict=True)}
    evidence = weights @ e
    strongest = names[int(np.argmax(evidence))] if float(evidence.max()) > 0 else None

    if look <= planned:
        marks.append([look, list(reading.canary), list(reading.baseline)])
    memory["marks"] = [m for m in marks if kept(int(m[0]), look)]
    return Weighing(tests, strongest, phis)


def learned_noise(memory: dict[str, Any]) -> dict[str, list[float]]:
    """What a step's pairs say of the noise, for the next step of the same service: by key,
    [Σχ², what they identify of the wobble free of the traffic split, pairs]
    (`stats.learned_pairs`), with what the step itself was carried in, worth at most
    `CARRIED_PAIRS` pairs."""
    states: dict[str, Any] = memory.get("dispersion") or {}
    carried: dict[str, list[float]] = memory.get("carried") or {}
    learned: dict[str, list[float]] = {}
    for name in states.keys() | carried.keys():
        state = states.get(name) or {}
        pairs = learned_pairs(state, state.get("carried", carried.get(name)), CARRIED_PAIRS)
        if pairs is not None:
            learned[name] = pairs
    return learned


def _fold_inside(marks: list[list[Any]], added: dict[str, Pair], look: int) -> None:
    """Add this look's pairs to the window of every restart they lie inside. The pair
    across a restart's origin (made at the look right after it) is not inside: if a
    regression began there, that pair is its step."""
    for mark in marks:
        if look - int(mark[0]) < 2:
            continue
        if len(mark) == 3:
            mark.append({})
        inside: dict[str, PairSums] = mark[3]
        for name, pair in added.items():
            inside[name] = add_pair(inside.get(name), pair)


def _noise(states: dict[str, Any], marks: list[list[Any]], names: list[str]) -> Any:
    """The dispersion each test divides its counts by: rows are origins (the step's start,
    then each restart), columns keys.

    The test from the start reads every interval's pairs. A restart reads those or its own
    window's, whichever says less. After a regression began at its origin, its own window
    holds only the new level, while every interval's pairs hold the step between the old
    and new levels, which read as noise would keep the restart from seeing the regression
    for the rest of the bake. Under a good release both read the same noise. A window of a
    few pairs has the wider bound, so a burst at a restart's origin leaves its window too few
    pairs to undercut every interval's. A window that has many pairs and reads less is one
    whose counts hold less wobble than the intervals before it. Leaving the step out of
    every interval's pairs instead was measured and is unsafe: the restart made at the start
    of a good canary's burst then reads the burst as a regression.
    """
    import numpy as np

    windows = [
        [None] + [(mark[3].get(name) if len(mark) > 3 else None) or [0.0, 0.0, 0] for mark in marks]
        for name in names
    ]
    phi = dispersion_table([states[name] for name in names], DISPERSION_ASSURANCE, windows)
    phi[1:] = np.minimum(phi[1:], phi[:1])
    return phi


def running_p(memory: dict[str, Any], e_now: float) -> float:
    """1 / the largest e-value seen at any look: a p-value however often the gate looks."""
    memory["e_max"] = max(float(memory.get("e_max", 0.0)), e_now)
    return min(1.0, 1.0 / memory["e_max"]) if memory["e_max"] > 0 else 1.0
