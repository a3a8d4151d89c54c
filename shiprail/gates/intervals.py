"""The histogram's per-interval test, beside its count test. Pure: numbers in, numbers out.

At a busy service what separates canary and baseline from one interval to the next is not
which requests happened to be slow but how the two sets of pods are doing: each arm's
latency wobbles, and a count test must divide its counts by a dispersion it can only bound
from the few intervals it has seen, so it waits several times longer than the evidence
needs. This test looks at each interval as one observation instead.

For each bucket bound b (a `Key`) and interval, it takes the canary's share of requests
slower than (1 + δ)·b and the baseline's slower than b, and their difference on the probit
scale, d = Φ⁻¹(canary) − Φ⁻¹(baseline). A canary no more than (1 + δ)× slower has d ≤ 0
whatever the latency distribution, since its share slower than (1 + δ)·b is then at most
the baseline's slower than b. The probit scale is where a shift of log latency moves every
share alike: both arms' latency moving together (a shared dependency, a shock) cancels in d,
and the pods' wobble in log latency stays about normal where the shares themselves are
skewed beyond any variance model. Each d has the binomial spread of its shares plus the
pods' wobble, whose scale is unknown; so the test is a t-test: a Bayes factor with a
normal prior on the effect in units of that scale (one-sided) and the right-Haar prior
ds/s on the scale, which is an e-value whatever the scale is (Pérez-Ortiz, Lardy, de Heide
& Grünwald, "E-statistics, group invariance and anytime-valid testing", Ann. Statist.
2024). A test that restarts at a look also reads the scale from the intervals before its
origin: under a good release they hold the same noise, and after a regression began at the
origin they still hold only noise, where the intervals since would count the step as noise.
That is what lets a restart decide within a few intervals of a regression's start.

Each interval is weighed by its precision, fixed before it is read: its binomial variance
(from its margins) plus the pods' wobble per tick over its length (a point estimate from
the pairs before it), so traffic that swings through the day does not make the quiet hours
look surer than they are; the t-test learns what is left of the scale.

An interval enters a bound's test only where each arm has enough requests on both sides of
it (`MIN_SPREAD`), judged on the interval's pooled share, never on either arm's own: a
choice made on the canary's share would pick the intervals where it happens to look slow.
Below that, a share's probit is too far from normal, and the count test is the one that
decides.

The usable bounds of an interval are also read together, as one more key (`SHIFT`): a
shift of log latency moves every bound's probit alike, while each bound's binomial noise is
partly its own, so a weighted mean of their differences is surer than any one of them
(`_shift`). It has half of each test's weight, the single bounds the other half, since a
regression that slows only a tail shows at its own bound.

Restarts and their weights are those of the count test (`sequential`); each restart fixes
at its origin the bounds it averages over: the bounds expected to be usable then.

A step that begins knowing its noise decides sooner: a sequential t-test with few degrees
of freedom needs several times the spreads a known scale does at the evidence a restart
must reach. The pods are the same from one step of a rollout to the next, and only the
traffic split changes, whose binomial part the weights already separate. So a step's
residual and wobble (`learned_noise`) are handed to the next step of the same service,
which counts them as one more block before every origin, put back in its own units.
That assumes the pods wobble about as much in the next step as in the last (measured:
within the promise when they wobble half as much again; bench/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shiprail.gates.sequential import Reading, compact, kept, restart_weight
from shiprail.gates.stats import shift_weights

# An interval is used at a bound when each arm expects n·p(1 − p) ≥ this many requests,
# p its share slower than the bound: a binomial share's probit is near normal from there
# (a little stricter than the textbook np ≥ 5 and n(1 − p) ≥ 5). At 10 the bounds a busy
# regression moves most entered late and with few intervals to read the scale from, which
# the t-test pays for. 5 was faster on two of the seeds it was chosen on, about level on a
# fresh one, and rolled back no good run more (bench/README.md).
MIN_SPREAD = 5.0
# The prior scales of the effect per interval, in units of the interval's own spread: a
# quiet bound's regression may move an interval by a fraction of its spread, a busy one's
# by ten spreads, and a single scale that fits one wastes the other's evidence. The Bayes
# factors of the scales are averaged (equal weights), which costs at most log 3.
PRIOR_SCALES = (1.0, 4.0, 16.0)
# A step starts knowing at most this many intervals' worth of the noise of the steps
# before it (`learned_noise`): enough that a restart near a regression's onset need not
# learn its scale from the regression's own intervals, and few enough that a step whose
# pods wobble more than the last one's (a replica-scaled baseline shrinking as the canary
# grows) soon reads its own.
CARRIED_FREEDOM = 30.0
# The key of the bounds read together (`_shift`), and its part of each test's weight: a
# regression that shifts the whole distribution shows surest there, one that slows only a
# tail shows at its own bound, so each has half.
SHIFT = "shift"
SHIFT_PART = 0.5


@dataclass(frozen=True)
class IntervalWeighing:
    # Each retained test's e-value (its mean over its bounds), by the look it began after
    # (0: the start), for the tests that had bounds to average when they began.
    tests: dict[int, float]
    strongest: str | None  # the key with the most evidence now, None if there is none


def weigh_intervals(
    memory: dict[str, Any], reading: Reading, *, at: float, interval: float, planned_looks: int
) -> IntervalWeighing:
    """One look at `at` seconds into the step: fold the interval since the last look into
    each bound's sums and weigh every retained test. `interval` is the gate's cadence,
    the unit of an interval's length (a missed look makes the next interval longer)."""
    look = int(memory.get("looks", 0)) + 1
    memory["looks"] = look
    last = memory.get("last")
    if last is None or len(last[0]) != len(reading.canary) or len(last[1]) != len(reading.baseline):
        # The first look, or the histogram gained or lost a bucket: start the sums afresh,
        # with the pods' wobble learned in the step before, if any.
        memory["keys"], memory["marks"] = _carried_keys(memory.get("carried")), []
        step_c, step_b, length = reading.canary, reading.baseline, 0.0
    else:
        step_c, step_b = _minus(reading.canary, last[0]), _minus(reading.baseline, last[1])
        length = (at - float(memory["at"])) / interval if interval > 0 else 0.0
    memory["at"], memory["last"] = at, [list(reading.canary), list(reading.baseline)]
    keys: dict[str, Any] = memory["keys"]
    traffic = (step_c[-1], step_b[-1])
    read: list[tuple[float, float]] = []  # (d, pooled share) of each bound usable now
    for name, key in reading.keys.items():
        state = keys.setdefault(name, {"p": None, "sums": [0.0, 0.0, 0.0, 0.0]})
        counts = key.counts(step_c, step_b)
        pooled = _pooled(counts, traffic)
        if length > 0 and pooled is not None and _usable(pooled, traffic):
            d = _probit_difference(counts, traffic, pooled)
            _fold(state, d, _sampling(pooled, traffic), length)
            read.append((d, pooled))
        state["p"] = _pooled(
            key.counts(reading.canary, reading.baseline), (reading.canary[-1], reading.baseline[-1])
        )
    if read:
        d, sampling = _shift(read, traffic)
        _fold(keys.setdefault(SHIFT, {"p": None, "sums": [0.0, 0.0, 0.0, 0.0]}), d, sampling, length)

    marks: list[list[Any]] = memory["marks"]
    tests, strongest = _evidence(keys, marks, planned_looks, memory.get("carried") or {})
    if look <= planned_looks:
        # A restart averages over the bounds it can expect to use, judged at its origin
        # from the share so far and the traffic of the interval just seen.
        usable = {
            n: [compact(x) for x in s["sums"]]
            for n, s in keys.items()
            if n != SHIFT and s["p"] is not None and _usable(s["p"], traffic)
        }
        if usable and SHIFT in keys:
            usable[SHIFT] = [compact(x) for x in keys[SHIFT]["sums"]]
        # The first test stands for the one from the step's start (origin 0), which the
        # count test begins before any data: an interval needs a look before it.
        origin = look if memory.get("started") else 0
        memory["started"] = True
        marks.append([origin, usable])
    memory["marks"] = [m for m in marks if m[0] == 0 or kept(int(m[0]), look)]
    return IntervalWeighing(tests, strongest)


def learned_noise(memory: dict[str, Any]) -> dict[str, list[float]]:
    """What a step's intervals say of the noise, for the next step of the same service:
    by bound, [χ², degrees of freedom, the wobble's two sums]. The χ² is the residual of
    the step's intervals about their own mean, over the variance an interval was weighed
    by (`_unit`), so it carries no units: the next step, at another share of traffic, puts
    it back in its own. The wobble is per tick in probits, the same at any share. What the
    step itself was carried in is added, so a third step knows both before it, and the
    whole is worth at most `CARRIED_FREEDOM` degrees of freedom."""
    keys: dict[str, Any] = memory.get("keys") or {}
    carried: dict[str, list[float]] = memory.get("carried") or {}
    learned: dict[str, list[float]] = {}
    for name, state in keys.items():
        count, weight, first, second = state["sums"]
        unit = _unit(state)
        if unit is None or count < 2 or weight <= 0:
            continue
        chi2, freedom = max(second - first * first / weight, 0.0) / unit, count - 1
        before = carried.get(name)
        if before is not None:
            chi2, freedom = chi2 + before[0], freedom + before[1]
        if freedom > CARRIED_FREEDOM:
            chi2, freedom = chi2 * CARRIED_FREEDOM / freedom, CARRIED_FREEDOM
        spread = state.get("spread") or [0.0, 0.0, 0.0, 0.0]
        learned[name] = [compact(chi2), float(freedom), compact(spread[0]), compact(spread[1])]
    return learned


def _carried_keys(carried: dict[str, list[float]] | None) -> dict[str, Any]:
    """Fresh sums for a step, each bound starting from the wobble learned before it."""
    return {
        name: {"p": None, "sums": [0.0, 0.0, 0.0, 0.0], "spread": [x[2], x[3], 0.0, 0.0]}
        for name, x in (carried or {}).items()
    }


def _unit(state: dict[str, Any]) -> float | None:
    """The variance an interval of this bound is weighed to (`_precision`): a typical
    interval's binomial part plus the wobble per tick; None before any interval."""
    spread = state.get("spread") or [0.0, 0.0, 0.0, 0.0]
    if spread[3] <= 0:
        return None
    wobble = max(spread[0] / spread[1], 0.0) if spread[1] > 0 else 0.0
    unit = spread[2] / spread[3] + wobble
    return unit if unit > 0 else None


def _fold(state: dict[str, Any], d: float, sampling: float, length: float) -> None:
    """Add one interval's probit difference to a key's sums, weighed by its precision."""
    weight = _precision(state, length, sampling)
    sums = state["sums"]
    for i, x in enumerate((1.0, weight, weight * d, weight * d * d)):
        sums[i] += x
    _observe_spread(state, d, sampling, length)


def _shift(read: list[tuple[float, float]], traffic: tuple[float, float]) -> tuple[float, float]:
    """One interval's bounds read together (`stats.shift_weights`): a weighted mean of their
    probit differences, and its binomial variance, with weights set from the interval's
    margins alone (by about half again surer than the surest bound where three or more are
    usable)."""
    import numpy as np

    weights, cov = shift_weights([q for _, q in read])
    d = float(weights @ np.array([x for x, _ in read]))
    return d, float(weights @ cov @ weights) * (1 / traffic[0] + 1 / traffic[1])


def _minus(a: list[float], b: list[float]) -> list[float]:
    return [max(x - y, 0.0) for x, y in zip(a, b, strict=True)]


def _pooled(counts: tuple[float, float], traffic: tuple[float, float]) -> float | None:
    """Both arms' share together: under a canary exactly (1 + δ)× slower the two shares are
    one, and this is all the interval says of it, whatever it says of the difference."""
    if traffic[0] <= 0 or traffic[1] <= 0:
        return None
    return min((counts[0] + counts[1]) / (traffic[0] + traffic[1]), 1.0)


def _usable(pooled: float, traffic: tuple[float, float]) -> bool:
    """Judged on the pooled share, never on either arm's own: a choice made on the canary's
    share would pick the intervals where it happens to look slow."""
    return all(n * pooled * (1 - pooled) >= MIN_SPREAD for n in traffic)


def _sampling(pooled: float, traffic: tuple[float, float]) -> float:
    """The binomial variance of d at the pooled share: p(1 − p)/φ(Φ⁻¹(p))² · (1/n_c + 1/n_b)."""
    from scipy.special import ndtri

    z = float(ndtri(pooled))
    return 2 * math.pi * math.exp(z * z) * pooled * (1 - pooled) * (1 / traffic[0] + 1 / traffic[1])


def _precision(state: dict[str, Any], length: float, sampling: float) -> float:
    """An interval's weight in the t-test, fixed before it is read: the inverse of its
    variance, its binomial part (from its margins) plus the pods' wobble per tick over its
    length (a point estimate from the pairs before it), in units of a typical interval's.
    The t-test then learns only what is left of the scale. Weighing by length alone read a
    diurnal service's quiet hours with the scale of its busy ones: a trough's binomial noise
    is three times the peak's."""
    spread = state.get("spread") or [0.0, 0.0, 0.0, 0.0]
    wobble = max(spread[0] / spread[1], 0.0) if spread[1] > 0 else 0.0
    typical = spread[2] / spread[3] if spread[3] > 0 else sampling * length
    return (typical + wobble) / (sampling + wobble / length)


def _observe_spread(state: dict[str, Any], d: float, sampling: float, length: float) -> None:
    """Fold an interval into its bound's wobble estimate: E[(dᵢ − dᵢ₋₁)²] = vᵢ + vᵢ₋₁ +
    w·(1/ℓᵢ + 1/ℓᵢ₋₁), and into the typical binomial variance per tick."""
    spread = state.setdefault("spread", [0.0, 0.0, 0.0, 0.0])
    before = state.get("before")
    if before is not None:
        spread[0] += (d - before[0]) ** 2 - sampling - before[1]
        spread[1] += 1 / length + 1 / before[2]
    spread[2] += sampling * length
    spread[3] += 1
    state["before"] = [d, sampling, length]


def _probit_difference(counts: tuple[float, float], traffic: tuple[float, float], pooled: float) -> float:
    """Φ⁻¹ of the canary's share minus Φ⁻¹ of the baseline's, each less the bias that Φ⁻¹
    gives a binomial share of n requests, ½·Φ⁻¹''(p)·p(1 − p)/n = π·z·p(1 − p)·e^(z²)/n at
    the pooled share p = Φ(z): the canary's fewer requests would otherwise lean its probit
    toward the middle."""
    from scipy.special import ndtri

    z = float(ndtri(pooled))
    curvature = math.pi * z * pooled * (1 - pooled) * math.exp(z * z)
    d = 0.0
    for sign, x, n in zip((1.0, -1.0), counts, traffic, strict=True):
        share = min(max(x / n, 0.5 / n), 1 - 0.5 / n)
        d += sign * (float(ndtri(share)) - curvature / n)
    return d


def _evidence(
    keys: dict[str, Any], marks: list[list[Any]], planned_looks: int, carried: dict[str, list[float]]
) -> tuple[dict[int, float], str | None]:
    """Each test's mean over its bounds of the t-test's Bayes factor, and the bound that
    contributes most to the mixture."""
    import numpy as np

    rows = [(int(m[0]), name, pre) for m in marks for name, pre in m[1].items()]
    if not rows:
        return {}, None
    pre = np.array([r[2] for r in rows], dtype=float)
    now = np.array([keys[r[1]]["sums"] for r in rows], dtype=float)
    # The step before's residual, in this step's units now (`learned_noise`).
    units = {name: _unit(keys[name]) for name in {r[1] for r in rows} if name in carried}
    scales = {name: unit for name, unit in units.items() if unit is not None}
    earlier = np.array(
        [[carried[r[1]][0] * scales[r[1]], carried[r[1]][1]] if r[1] in scales else [0.0, 0.0] for r in rows],
        dtype=float,
    )
    bf = sum(
        np.exp(np.minimum(log_t_bayes_factor(pre, now - pre, g, earlier), 700.0)) for g in PRIOR_SCALES
    ) / len(PRIOR_SCALES)
    parts = {int(m[0]): _parts(m[1]) for m in marks}
    tests: dict[int, float] = {}
    by_key: dict[str, float] = {}
    for (origin, name, _), x in zip(rows, bf, strict=True):
        share = float(x) * parts[origin][name == SHIFT]
        tests[origin] = tests.get(origin, 0.0) + share
        by_key[name] = by_key.get(name, 0.0) + restart_weight(origin, planned_looks) * share
    # The bound named is one a reader can look up: the shift's evidence is every bound's.
    by_key.pop(SHIFT, None)
    if not by_key:
        return tests, None
    best = max(by_key, key=lambda k: by_key[k])
    return tests, best if by_key[best] > 0 else None


def _parts(bounds: dict[str, Any]) -> tuple[float, float]:
    """A test's weight on each single bound and on the bounds read together, fixed at its
    origin: half on the shift where it has one, half spread over the bounds."""
    if SHIFT not in bounds:
        return 1 / max(len(bounds), 1), 0.0
    singles = len(bounds) - 1
    if singles == 0:
        return 0.0, 1.0
    return (1 - SHIFT_PART) / singles, SHIFT_PART


def log_t_bayes_factor(before: Any, since: Any, scale: float, earlier: Any = None) -> Any:
    """log of the one-sided t-test Bayes factor for "the mean since the origin is > 0".

    Rows of `before` and `since` are sums [count, Σℓ, Σℓd, Σℓd²] of observations d with
    variance s²/ℓ: before the origin (they only tell the scale s, about their own mean) and
    since (mean μ). Rows of `earlier`, if given, are [residual, degrees of freedom] of more
    observations with the same scale, each block already about its own mean (a step
    before this one). The prior on δ = μ/s is half-normal with `scale`, the prior on s is
    ds/s. With T the residual sum of squares of both parts, L = Σℓ and M the mean since,
    ν = n_since + n_before − 1 (the before part has lost one to its own mean), A = T + L·M²
    and A' = T + L·M²/(1 + Lγ²):

        BF = 2 (1 + Lγ²)^(−½) (A/A')^(ν/2) F_t,ν(L·M·γ·√(ν / (A'(1 + Lγ²))))

    which is 1 with nothing since the origin.
    """
    import numpy as np
    from scipy.special import stdtr

    before, since = np.atleast_2d(before), np.atleast_2d(since)
    m, l0, s1, s2 = before.T
    n, length, t1, t2 = since.T
    rss_before = np.where(l0 > 0, s2 - np.divide(s1 * s1, l0, out=np.zeros_like(l0), where=l0 > 0), 0.0)
    mean = np.divide(t1, length, out=np.zeros_like(length), where=length > 0)
    rss_since = np.where(length > 0, t2 - t1 * mean, 0.0)
    residual = np.maximum(rss_before, 0.0) + np.maximum(rss_since, 0.0)
    nu = n + np.maximum(m - 1, 0.0)
    if earlier is not None:
        earlier = np.atleast_2d(earlier)
        residual = residual + np.maximum(earlier[:, 0], 0.0)
        nu = nu + np.maximum(earlier[:, 1], 0.0)
    g2 = scale * scale
    shrink = 1 + length * g2
    a = residual + length * mean * mean
    a_prime = residual + length * mean * mean / shrink
    with np.errstate(divide="ignore", invalid="ignore"):
        x = length * mean * scale * np.sqrt(nu / (a_prime * shrink))
        log_bf = (
            math.log(2)
            - 0.5 * np.log(shrink)
            + 0.5 * nu * (np.log(a) - np.log(a_prime))
            + np.log(stdtr(nu, x))
        )
    # No observation since the origin (or none with spread): no evidence either way.
    return np.where((n > 0) & (a_prime > 0) & np.isfinite(log_bf), log_bf, 0.0)
