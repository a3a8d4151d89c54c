"""The histogram's count test: at each bound, canary and baseline as two binomial samples. Pure.

The error test (`sequential`) treats bad requests as Poisson counts and asks whether the
canary's share of them is above its share of traffic (Lindon & Malek 2022). That is exact
for rare events, but at a latency bound near the median half the requests are slow, and
whether the other half were fast says as much as whether these were slow: the Poisson form
reads the canary's slow count with a variance n·q where it is n·q(1 − q), and wastes most of
the evidence at exactly the bounds a latency regression moves most. This test uses both.

At each interval and bound, with n_c canary and n_b baseline requests of which N are slow
(the canary's read at (1 + δ)·b, the baseline's at b), q = N/(n_c + n_b) is the pooled share.
If the canary is no slower than tolerated, then given N its slow count X is hypergeometric
or smaller, whatever q is, so

    log E[e^(ψX)] ≤ ψ·n_c·q + (e^ψ − 1 − ψ)·n_c·q(1 − q)        for ψ > 0

(the hypergeometric is below the binomial in convex order, Hoeffding 1963; Bennett's lemma
for a Bernoulli). exp(ψ·(X − μ) − (e^ψ − 1 − ψ)·V), summed over intervals, is then an
e-process for each ψ, and a mixture over ψ is one too. The canary's count read between two
bounds is fractional; the exponent is convex in it, so it is below the average over the
integer counts a coin would round it to, which is valid.

Pods' wobble adds variance τ² to the difference of shares from interval to interval; the
exponent is divided by φ = 1 + τ²·Σn_c²/V (quasi-likelihood), with τ² bounded from the
successive differences of the per-interval share differences as the Poisson test bounds
its ρ (`stats.excess_bound`), and read for a restart from every interval's pairs or its own
window's, whichever says less, as there (`sequential._noise` says why).

A step that begins knowing its noise decides sooner: with a score of pairs the dispersion
bound alone asks for about twice the requests the wobble does, even where the pods hardly
wobble. The pods are the same from one step of a rollout to the next, and τ² on the log
odds of each arm is the same at any split of traffic; only its part in the canary's share,
(1 − own)², changes. So each bound's pairs (`learned_noise`) go to the next step of the
same service with that factor taken out, and count there as pairs seen before its first
interval, put back at its own split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shiprail.gates.sequential import (
    CARRIED_PAIRS,
    DISPERSION_ASSURANCE,
    Reading,
    compact,
    kept,
    restart_weight,
)
from shiprail.gates.stats import MAX_LOG_WOBBLE, carry_pairs, excess_bound, wobble_share

# A single interval counts for at most this many spreads (see `_observe`): 8 nats of
# evidence at most, short of what any test needs alone.
CLIP_SPREADS = 4.0
# A bound's sums: clipped slow count, its expectation, its variance, the wobble's part of
# it, the Kearns-Saul variance; then canary and all traffic. A restart keeps the first five.
_MARKED = 5
# The tilts ψ the mixture spreads its prior over: log-spaced from a shift of a fiftieth in
# log odds to one of 5 (odds ×150), equally weighted (a scale-free prior).
_TILTS = tuple(0.02 * 250 ** (i / 29) for i in range(30))


@dataclass(frozen=True)
class ShareWeighing:
    # Each retained test's e-value (its mean over the bounds), by the look it began after.
    tests: dict[int, float]
    strongest: str | None  # the bound with the most evidence now, None if there is none
    dispersion: dict[str, float]  # φ of the test from the start, by bound


def weigh_shares(
    memory: dict[str, Any], reading: Reading, *, planned_looks: int, length: float = 1.0
) -> ShareWeighing:
    """One look: fold the interval since the last look into each bound's sums and noise
    estimate, weigh every retained test, and keep what the next look needs in `memory`.
    `length` is the interval's, in looks (a missed scrape makes it longer)."""
    import numpy as np

    look = int(memory.get("looks", 0)) + 1
    memory["looks"] = look
    last = memory.get("last")
    if last is None or len(last[0]) != len(reading.canary) or len(last[1]) != len(reading.baseline):
        # The first look, or the histogram gained or lost a bucket: start afresh, with the
        # pairs learned in the step before, if any.
        memory["bounds"], memory["marks"] = {}, []
        step_c, step_b = reading.canary, reading.baseline
    else:
        step_c, step_b = _minus(reading.canary, last[0]), _minus(reading.baseline, last[1])
    memory["last"] = [list(reading.canary), list(reading.baseline)]
    bounds: dict[str, Any] = memory["bounds"]
    marks: list[dict[str, Any]] = memory["marks"]
    names = list(reading.keys)
    n_c, n_b = step_c[-1], step_b[-1]
    carried: dict[str, list[float]] = memory.get("carried") or {}
    taus = _wobble_bounds(bounds, names, carried)
    for name, tau in zip(names, taus, strict=True):
        state = bounds.setdefault(name, {"sums": [0.0] * (_MARKED + 2), "pairs": [0.0, 0.0, 0]})
        pair = _observe(state, *reading.keys[name].counts(step_c, step_b), n_c, n_b, float(tau), length)
        if pair is not None:
            for mark in marks:
                # The pair across a restart's origin is not inside its window: if a
                # regression began there, that pair is its step.
                if look - int(mark["look"]) >= 2 and name in mark["weights"]:
                    inside = mark["inside"].setdefault(name, [0.0, 0.0, 0])
                    for i, x in enumerate((*pair, 1)):
                        inside[i] = compact(inside[i] + x)
    if not names:
        return ShareWeighing({}, None, {})

    origins = [0] + [int(m["look"]) for m in marks]
    now = np.array([bounds[n]["sums"][:_MARKED] for n in names], dtype=float)
    before = np.zeros((len(origins), len(names), _MARKED))
    for row, mark in enumerate(marks, start=1):
        before[row] = [mark["sums"].get(n, [0.0] * _MARKED) for n in names]
    since = now[None] - before  # origins × bounds × [Σx, Σμ, ΣV, Σwobble, Σn_c, Σn, ΣG]
    phi = _noise(bounds, marks, names, since, carried)
    score, var = since[..., 0] - since[..., 1], np.maximum(since[..., 2], 0.0)
    psi = np.array(_TILTS)[:, None, None]
    # Σ of each interval's bound on its CGF is at most the smaller of the two sums.
    cgf = np.minimum((np.exp(psi) - 1 - psi) * var[None], psi * psi * since[None, ..., 4])
    log_e = (psi * score[None] - cgf) / phi[None]
    e = np.exp(np.minimum(log_e, 700.0)).mean(axis=0)  # origins × bounds
    # Each test's bounds weighed as fixed at its origin (the test from the start: equally).
    weights = np.full((len(origins), len(names)), 1 / len(names))
    for row, mark in enumerate(marks, start=1):
        if "weights" in mark:
            weights[row] = [mark["weights"].get(n, 0.0) for n in names]
    e = e * weights
    tests = {o: float(x) for o, x in zip(origins, e.sum(axis=1), strict=True)}
    evidence = np.array([restart_weight(o, planned_looks) for o in origins]) @ e
    strongest = names[int(np.argmax(evidence))] if float(evidence.max()) > float(evidence.min()) else None
    if look <= planned_looks:
        kept_bounds = _bound_weights({n: bounds[n]["sums"] for n in names})
        marks.append(
            {
                "look": look,
                "sums": {n: [compact(x) for x in bounds[n]["sums"][:_MARKED]] for n in kept_bounds},
                "inside": {},
                "weights": {n: compact(w) for n, w in kept_bounds.items()},
            }
        )
    memory["marks"] = [m for m in marks if kept(int(m["look"]), look)]
    return ShareWeighing(tests, strongest, {n: float(phi[0, col]) for col, n in enumerate(names)})


def learned_noise(memory: dict[str, Any]) -> dict[str, list[float]]:
    """What a step's pairs say of the noise, for the next step of the same service: by bound,
    [Σχ², what the pairs identify of τ² on each arm's log odds, pairs]. The pairs identify
    τ²·(1 − own)² in the canary's share (`_observe`), so the identification is carried times
    (1 − own)², free of the split, and the next step divides it by its own. What the step
    itself was carried in is added, so a third step knows both before it, and the whole is
    worth at most `CARRIED_PAIRS` pairs."""
    bounds: dict[str, Any] = memory.get("bounds") or {}
    carried: dict[str, list[float]] = memory.get("carried") or {}
    learned: dict[str, list[float]] = {}
    for name in bounds.keys() | carried.keys():
        state = bounds.get(name)
        now = [0.0, 0.0, 0.0]
        if state is not None and state["sums"][6] > 0:
            own = state["sums"][5] / state["sums"][6]
            now = [state["pairs"][0], state["pairs"][1] * (1 - own) ** 2, state["pairs"][2]]
        pairs = carry_pairs(now, carried.get(name), CARRIED_PAIRS)
        if pairs is not None:
            learned[name] = pairs
    return learned


def _every_pair(state: dict[str, Any], carried: list[float] | None) -> list[float]:
    """A bound's pair sums over every interval of the step, and the pairs carried from the
    steps before (`learned_noise`) put back at this step's split."""
    pairs = [float(x) for x in state["pairs"]]
    if carried is None or state["sums"][6] <= 0:
        return pairs
    rest = 1 - state["sums"][5] / state["sums"][6]
    if rest <= 0:
        return pairs
    return [pairs[0] + carried[0], pairs[1] + carried[1] / (rest * rest), pairs[2] + carried[2]]


def _minus(a: list[float], b: list[float]) -> list[float]:
    return [max(x - y, 0.0) for x, y in zip(a, b, strict=True)]


def _observe(
    state: dict[str, Any], x: float, b: float, n_c: float, n_b: float, tau: float, length: float = 1.0
) -> tuple[float, float] | None:
    """Fold one interval of one bound into its sums; return the pair it makes with the
    interval before (its χ² and identification weight), if any. `tau` is the wobble bound
    before this interval; `length` the interval's, in looks (`stats.wobble_share`)."""
    if n_c <= 0 or n_b <= 0:
        return None
    x = min(x, n_c)
    q = min((x + b) / (n_c + n_b), 1.0)
    own = n_c / (n_c + n_b)
    sums = state["sums"]
    # Pods' wobble moves each arm's log odds by about the same whatever the share, so its
    # variance in the shares is τ²·(q(1 − q))², τ² on the log-odds scale: a tail bound's
    # share can jump thirtyfold in a shock, and a τ² in units of share fitted to the quiet
    # intervals would trust the shock's. Each arm's share wobbling by s² adds n(n − 1)s² to
    # its count, and X − n_c·q = (1 − ρ)X − ρB puts both arms in it.
    scale = (q * (1 - q)) ** 2
    wobble = max(n_c * n_c - n_c / (2 * (1 - own)), 0.0) * scale
    # No one interval may count for more than CLIP_SPREADS of its spread: far in the tail of
    # a narrow distribution, pods a little slower move a share eightyfold, which no variance
    # describes, and one such interval is all a restart made just before it would see. The
    # clip is set before the interval is read (by its margins and the noise so far), and a
    # count clipped from above keeps the bound on its CGF, so the test stays an e-process.
    var = n_c * q * (1 - q)
    clipped = min(x, n_c * q + CLIP_SPREADS * math.sqrt(var + tau * wobble))
    for i, add in enumerate((clipped, n_c * q, var, wobble, n_c * _kearns_saul(q), n_c, n_c + n_b)):
        sums[i] += add
    # The difference of the canary's share from the pooled one, and its variance given the
    # interval's margins: exactly the hypergeometric's, so that a pair's χ² is 1 on average
    # without over-dispersion however few requests the interval had.
    n = n_c + n_b
    d, v = x / n_c - q, (q * (1 - q) * (1 - own) / n_c) * (n / (n - 1) if n > 1 else 0.0)
    before = state.get("before")
    state["before"] = [d, v, scale, length]
    if before is None or v + before[1] <= 0:
        return None
    spread = v + before[1]
    # Each interval's wobble averaged over its length (`stats.wobble_share` says why).
    earlier = before[3] if len(before) > 3 else 1.0
    wobbled = scale * wobble_share(length, length) + before[2] * wobble_share(earlier, earlier)
    pair = ((d - before[0]) ** 2 / spread, wobbled / spread)
    pairs = state["pairs"]
    pairs[0], pairs[1], pairs[2] = pairs[0] + pair[0], pairs[1] + pair[1], pairs[2] + 1
    return pair


def _bound_weights(sums: dict[str, list[float]]) -> dict[str, float]:
    """How a restart weighs its bounds, fixed at its origin from the shares before it: in
    proportion to the information a shift of log latency has at each, φ(Φ⁻¹(q))²/(q(1 − q))
    at the pooled share q. A bound every request is slower (or faster) than says little of
    any shift, and an equal weight on it costs the bounds that do; weights fixed before the
    test's data keep its average an e-value."""
    from scipy.special import ndtri

    info = {}
    for name, s in sums.items():
        q = s[1] / s[5] if s[5] > 0 else 0.0
        if 0.0 < q < 1.0:
            z = float(ndtri(q))
            info[name] = math.exp(-z * z) / (2 * math.pi) / (q * (1 - q))
    total = sum(info.values())
    if total <= 0:
        return {name: 1 / len(sums) for name in sums}
    # A bound of almost no weight is left out, so a restart keeps only the bounds it uses.
    kept = {name: x for name, x in info.items() if x >= 1e-3 * total}
    return {name: x / sum(kept.values()) for name, x in kept.items()}


def _kearns_saul(q: float) -> float:
    """The least c with log E e^(ψ(B − q)) ≤ c·ψ² for every ψ, B a Bernoulli(q) (Kearns &
    Saul 1998): (1 − 2q) / (4 ln((1 − q)/q)), ⅛ at q = ½. It is the binomial's own CGF at
    ψ = 2 ln((1 − q)/q), where Bennett's bound, tight for small shares and small ψ, already
    charges twice as much: the two bound a large regression at a central share and a
    small one at a tail."""
    if q <= 0.0 or q >= 1.0:
        return 0.0
    if abs(q - 0.5) < 1e-9:
        return 0.125
    return (1 - 2 * q) / (4 * math.log((1 - q) / q))


def _wobble_bounds(bounds: dict[str, Any], names: list[str], carried: dict[str, list[float]]) -> Any:
    """Each bound's wobble bound from every interval so far and the pairs carried (what pods
    plausibly do before any pair)."""
    import numpy as np

    rows = []
    for name in names:
        state = bounds.get(name)
        if state is None or state["sums"][6] <= 0:
            rows.append(([0.0, 0.0, 0], 2 * MAX_LOG_WOBBLE))
            continue
        own = state["sums"][5] / state["sums"][6]
        rows.append((_every_pair(state, carried.get(name)), 2 * MAX_LOG_WOBBLE * (1 - own) ** 2))
    if not rows:
        return np.zeros(0)
    observed, identified, m = np.array([r[0] for r in rows], dtype=float).T
    plausible = np.array([r[1] for r in rows])
    return excess_bound(observed, identified, m, plausible, DISPERSION_ASSURANCE)


def _noise(
    bounds: dict[str, Any],
    marks: list[dict[str, Any]],
    names: list[str],
    since: Any,
    carried: dict[str, list[float]],
) -> Any:
    """φ for each test (rows: the start, then each restart) and bound (columns), over the
    intervals since the test's origin; every interval's pairs include those carried. All
    bounds are bounded in one call: a busy histogram has a dozen bounds and two dozen
    restarts at every look."""
    import numpy as np

    phi = np.ones(since.shape[:2])
    used = [(col, name) for col, name in enumerate(names) if min(bounds[name]["sums"][5:7]) > 0]
    if not used:
        return phi
    cols = [col for col, _ in used]
    # What pods plausibly do: either arm's odds halving or doubling between intervals.
    own = [bounds[name]["sums"][5] / bounds[name]["sums"][6] for _, name in used]
    plausible = np.array([[2 * MAX_LOG_WOBBLE * (1 - x) ** 2] for x in own])
    pairs = np.array(
        [
            [_every_pair(bounds[name], carried.get(name))]
            + [m["inside"].get(name, [0.0, 0.0, 0]) for m in marks]
            for _, name in used
        ],
        dtype=float,
    )  # bounds × tests × [Σχ², Σidentified, m]
    tau = excess_bound(pairs[..., 0], pairs[..., 1], pairs[..., 2], plausible, DISPERSION_ASSURANCE)
    tau[:, 1:] = np.minimum(tau[:, 1:], tau[:, :1])
    var, wobble = since[:, cols, 2].T, since[:, cols, 3].T
    phi[:, cols] = (1 + tau * np.divide(wobble, var, out=np.zeros_like(var), where=var > 0)).T
    return phi
