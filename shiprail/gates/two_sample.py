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

The bounds are also read together, as one more key (`SHIFT`, as in the per-interval test):
each request scores the weighted number of bounds it is slower than, with the weights that
read a shift of log latency surest (`stats.shift_weights`), and the canary's sum of scores
is tested the same way as a bound's slow count, its CGF the score's own, known from the
interval's margins (`_shift`). At a quiet service, where a few requests an interval spread
over the buckets, that reads what a rank test reads where each bound reads what a median
test does; it has half of each test's weight, the single bounds the other half.

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

from shiprail.gates.intervals import SHIFT, SHIFT_PART
from shiprail.gates.sequential import (
    CARRIED_PAIRS,
    DISPERSION_ASSURANCE,
    Reading,
    compact,
    kept,
    restart_weight,
)
from shiprail.gates.stats import MAX_LOG_WOBBLE, carry_pairs, excess_bound, shift_weights, wobble_share

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
    counts = {name: reading.keys[name].counts(step_c, step_b) for name in names}
    shift = _shift(counts, _pooled_shares(reading), n_c + n_b)
    if shift is not None or SHIFT in bounds:
        names.append(SHIFT)
        taus = np.append(taus, _wobble_bounds(bounds, [SHIFT], carried))
    for name, tau in zip(names, taus, strict=True):
        state = bounds.setdefault(name, {"sums": [0.0] * (_MARKED + 2), "pairs": [0.0, 0.0, 0]})
        if name == SHIFT:
            pair = None
            if shift is not None and n_c > 0 and n_b > 0:
                pair = _observe(state, *shift[0], n_c, n_b, float(tau), length, shift[1])
                cgf = state.setdefault("cgf", [0.0] * len(_TILTS))
                for i, k in enumerate(shift[2]):
                    cgf[i] += n_c * k
        else:
            pair = _observe(state, *counts[name], n_c, n_b, float(tau), length)
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
    if SHIFT in names and "cgf" in bounds[SHIFT]:
        # The bounds read together know their score's whole distribution (`_shift`).
        zero = [0.0] * len(_TILTS)
        at = np.array([zero] + [mark.get("cgf") or zero for mark in marks], dtype=float)
        cgf[:, :, names.index(SHIFT)] = (np.array(bounds[SHIFT]["cgf"], dtype=float)[None] - at).T
    log_e = (psi * score[None] - cgf) / phi[None]
    e = np.exp(np.minimum(log_e, 700.0)).mean(axis=0)  # origins × bounds
    # Each test's bounds weighed as fixed at its origin (the test from the start: equally,
    # with the bounds read together taking their part).
    singles = [n for n in reading.keys]
    weights = np.array([[(1 - SHIFT_PART) / len(singles) if n != SHIFT else SHIFT_PART for n in names]])
    weights = np.repeat(weights, len(origins), axis=0)
    for row, mark in enumerate(marks, start=1):
        if "weights" in mark:
            weights[row] = [mark["weights"].get(n, 0.0) for n in names]
    e = e * weights
    tests = {o: float(x) for o, x in zip(origins, e.sum(axis=1), strict=True)}
    evidence = np.array([restart_weight(o, planned_looks) for o in origins]) @ e
    # The bound named is one a reader can look up: the shift's evidence is every bound's.
    single = evidence[: len(singles)]
    strongest = singles[int(np.argmax(single))] if float(single.max()) > float(single.min()) else None
    if look <= planned_looks:
        kept_bounds = _bound_weights({n: bounds[n]["sums"] for n in singles})
        if SHIFT in bounds:
            kept_bounds = {n: w * (1 - SHIFT_PART) for n, w in kept_bounds.items()} | {SHIFT: SHIFT_PART}
        marks.append(
            {
                "look": look,
                "sums": {n: [compact(x) for x in bounds[n]["sums"][:_MARKED]] for n in kept_bounds},
                "inside": {},
                "weights": {n: compact(w) for n, w in kept_bounds.items()},
            }
        )
        if SHIFT in kept_bounds and "cgf" in bounds[SHIFT]:
            marks[-1]["cgf"] = [compact(x) for x in bounds[SHIFT]["cgf"]]
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
    state: dict[str, Any],
    x: float,
    b: float,
    n_c: float,
    n_b: float,
    tau: float,
    length: float = 1.0,
    spread: tuple[float, float] | None = None,
) -> tuple[float, float] | None:
    """Fold one interval of one bound into its sums; return the pair it makes with the
    interval before (its χ² and identification weight), if any. `tau` is the wobble bound
    before this interval; `length` the interval's, in looks (`stats.wobble_share`).

    `x` and `b` are each arm's slow requests, or for the bounds read together (`_shift`)
    each arm's sum of its requests' scores in [0, 1]; then `spread` is the score's variance
    over the interval's requests and how far its mean moves for a unit of wobble in the
    arms' log odds, both q(1 − q) for a single bound. A score in [0, 1] with mean q has no
    larger CGF than a Bernoulli(q), and its draws into the canary without replacement none
    larger than with (Hoeffding 1963), so both bounds on the CGF below hold for it too."""
    if n_c <= 0 or n_b <= 0:
        return None
    x = min(x, n_c)
    q = min((x + b) / (n_c + n_b), 1.0)
    own = n_c / (n_c + n_b)
    variance, moved = spread if spread is not None else (q * (1 - q), q * (1 - q))
    sums = state["sums"]
    # Pods' wobble moves each arm's log odds by about the same whatever the share, so its
    # variance in the shares is τ²·(q(1 − q))², τ² on the log-odds scale: a tail bound's
    # share can jump thirtyfold in a shock, and a τ² in units of share fitted to the quiet
    # intervals would trust the shock's. Each arm's share wobbling by s² adds n(n − 1)s² to
    # its count, and X − n_c·q = (1 − ρ)X − ρB puts both arms in it.
    scale = moved * moved
    wobble = max(n_c * n_c - n_c / (2 * (1 - own)), 0.0) * scale
    # No one interval may count for more than CLIP_SPREADS of its spread: far in the tail of
    # a narrow distribution, pods a little slower move a share eightyfold, which no variance
    # describes, and one such interval is all a restart made just before it would see. The
    # clip is set before the interval is read (by its margins and the noise so far), and a
    # count clipped from above keeps the bound on its CGF, so the test stays an e-process.
    var = n_c * variance
    clipped = min(x, n_c * q + CLIP_SPREADS * math.sqrt(var + tau * wobble))
    for i, add in enumerate((clipped, n_c * q, var, wobble, n_c * _kearns_saul(q), n_c, n_c + n_b)):
        sums[i] += add
    # The difference of the canary's share from the pooled one, and its variance given the
    # interval's margins: exactly the hypergeometric's, so that a pair's χ² is 1 on average
    # without over-dispersion however few requests the interval had.
    n = n_c + n_b
    d, v = x / n_c - q, (variance * (1 - own) / n_c) * (n / (n - 1) if n > 1 else 0.0)
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


def _pooled_shares(reading: Reading) -> dict[str, float]:
    """Each bound's share of both arms' requests slower than it, over the step so far."""
    n = reading.canary[-1] + reading.baseline[-1]
    if n <= 0:
        return {}
    return {name: sum(key.counts(reading.canary, reading.baseline)) / n for name, key in reading.keys.items()}


def _shift(
    counts: dict[str, tuple[float, float]], shares: dict[str, float], n: float
) -> tuple[tuple[float, float], tuple[float, float], list[float]] | None:
    """One interval's bounds read together: each request scored by the weighted number of
    bounds it is slower than, weights summing to 1, and each arm's sum of scores; with the
    score's variance over the interval's requests and its move per unit of log-odds wobble
    (`_observe`), and the CGF of one request's score drawn from the interval's, at each tilt
    (`_TILTS`). None where no bound splits the step's requests.

    Given the margins, the canary's scores are drawn without replacement from the
    interval's, so their sum has no larger CGF than n_c draws with replacement (Hoeffding
    1963): the score's own CGF, known from the margins, bounds it exactly where Bennett's
    bound, made for a share, charges a score spread over [0, 1] as if every request scored
    0 or 1 (about half the evidence at a quiet service's typical shift).

    A shift of log latency moves every bound's share, and each bound's binomial noise is
    partly its own: at a quiet service, where a few requests an interval spread over the
    buckets, the score is surer than any one bound, as a rank test is than a median test.
    The weights are those that read the bounds' probit differences together
    (`stats.shift_weights`), put on the shares' scale, at the step's pooled shares so far:
    this interval's margins and the intervals before, never either arm's own shares here, so
    the score's mean under the null is still the pooled one."""
    import numpy as np
    from scipy.special import ndtri

    used = [name for name in counts if 0.0 < shares.get(name, 0.0) < 1.0]
    if not used or n <= 0:
        return None
    pooled = np.array([shares[name] for name in used])
    on_probits, _ = shift_weights(pooled)
    z = ndtri(pooled)
    weights = on_probits / (np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
    if weights.sum() <= 0:
        return None
    weights /= weights.sum()
    canary = np.array([counts[name][0] for name in used])
    baseline = np.array([counts[name][1] for name in used])
    q = np.clip((canary + baseline) / n, 0.0, 1.0)
    variance = float(weights @ (np.minimum.outer(q, q) - np.outer(q, q)) @ weights)
    return (
        (float(weights @ canary), float(weights @ baseline)),
        (max(variance, 0.0), float(weights @ (q * (1 - q)))),
        _score_cgf(weights, q, pooled),
    )


def _score_cgf(weights: Any, shares: Any, order: Any) -> list[float]:
    """log E e^(ψ(S − m)) at each tilt, S the score of a request drawn from an interval whose
    shares slower than the bounds are `shares` and m its mean there, Σ weights·shares. A
    request slower than the bounds with the k largest shares scores the sum of their
    weights. Each arm's `increase` is extrapolated bucket by bucket, so an interval's shares
    need not be nested; they are made so by lowering each to the least of those below it,
    which lowers the spread of S and the mean it is centred at, and the canary's score is
    still centred at the larger mean: the safe side."""
    import numpy as np

    rank = np.argsort(-np.asarray(order), kind="stable")
    nested = np.minimum.accumulate(np.asarray(shares, dtype=float)[rank])
    scores = np.concatenate(([0.0], np.cumsum(np.asarray(weights, dtype=float)[rank])))
    mass = -np.diff(np.concatenate(([1.0], nested, [0.0])))
    mean = float(mass @ scores)
    psi = np.array(_TILTS)[:, None]
    top = psi * (scores[None] - mean)
    peak = top.max(axis=1)
    cgf = peak + np.log(np.exp(top - peak[:, None]) @ mass)
    return [float(x) for x in np.maximum(cgf, 0.0)]


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
