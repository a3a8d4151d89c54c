"""Statistics for canary-vs-baseline comparisons. Pure functions, numbers in, numbers out.

numpy and scipy are imported where they are used: they take seconds to load, and every
CLI command imports this module through the workflow definitions.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any


def tolerated_share(rho: float, max_increase: float) -> float:
    """The canary's share of errors if its error rate were (1 + δ)× the baseline's.

    With traffic share ρ and equal rates the canary gets ρ of the errors; a tolerated
    relative increase δ moves the null to ρ' = ρ(1+δ) / (1 + ρδ).
    """
    return rho * (1 + max_increase) / (1 + rho * max_increase)


def poisson_log_bayes_factor(n_baseline: int, n_canary: int, rho: float, prior_strength: float) -> float:
    """Lindon & Malek (2022) Dirichlet–multinomial Bayes factor for error counts.

    Under H0 the canary's share of errors is ρ; the alternative puts a Dirichlet(k·ρ, k·(1−ρ))
    prior on that share. Anytime-valid: exp(−log BF) is a p-value at every look.
    """
    counts = (float(n_baseline), float(n_canary))
    shares = (1 - rho, rho)
    alpha = [prior_strength * share for share in shares]
    return (
        math.lgamma(sum(alpha))
        - math.lgamma(sum(alpha) + sum(counts))
        + sum(math.lgamma(a + c) - math.lgamma(a) for a, c in zip(alpha, counts, strict=True))
        - sum(c * math.log(share) for c, share in zip(counts, shares, strict=True) if c)
    )


def one_sided_log_bayes_factor(n_baseline: int, n_canary: int, rho: float, prior_strength: float) -> float:
    """The same Bayes factor with the prior kept only where the canary is *worse* (share > ρ).

    A gate only ever rolls back a canary that is worse, so prior mass on shares below ρ is
    evidence spent on an alternative no one acts on. Truncating the Beta prior to θ > ρ
    scales the factor by P(θ > ρ | data) / P(θ > ρ): up to about 2.5× more evidence from the
    same counts once the canary is clearly worse, and much less when it is clearly better.
    Each likelihood ratio θ/ρ with θ > ρ is a supermartingale whenever the true share is ≤ ρ,
    so the mixture stays anytime-valid against the whole one-sided null, not just θ = ρ.
    """
    from scipy.special import betaincc

    full = poisson_log_bayes_factor(n_baseline, n_canary, rho, prior_strength)
    a, b = prior_strength * rho, prior_strength * (1 - rho)
    posterior = float(betaincc(a + n_canary, b + n_baseline, rho))
    if posterior <= 0.0:
        return -math.inf
    return full + math.log(posterior) - math.log(float(betaincc(a, b, rho)))


def e_value(n_baseline: int, n_canary: int, rho: float, prior_strength: float) -> float:
    """The one-sided Bayes factor as an e-value: under H0 its running maximum exceeds 1/α
    with probability at most α, however often it is looked at (Ville's inequality), and an
    average of e-values is an e-value. Capped where `exp` would overflow; any such value rejects.
    """
    if n_baseline + n_canary == 0:
        return 1.0
    return math.exp(min(one_sided_log_bayes_factor(n_baseline, n_canary, rho, prior_strength), 700.0))


def hodges_lehmann(
    canary: list[float], baseline: list[float], confidence: float
) -> tuple[float, float, float]:
    """Shift estimate Δ (canary − baseline) and its confidence interval [low, high].

    Uses the Walsh-difference order statistics with the Mann–Whitney normal approximation,
    as Kayenta's judge does.
    """
    import numpy as np

    x, y = np.asarray(canary, dtype=float), np.asarray(baseline, dtype=float)
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    m, n = len(x), len(y)
    shift = float(np.median(diffs))
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    k = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))
    k = min(max(k, 0), len(diffs) - 1)
    return shift, float(diffs[k]), float(diffs[len(diffs) - 1 - k])


def mann_whitney_greater(canary: list[float], baseline: list[float]) -> float:
    """One-sided p-value that the canary's values are stochastically larger."""
    from scipy import stats

    return float(stats.mannwhitneyu(canary, baseline, alternative="greater").pvalue)


def spent_alpha(alpha: float, look: int, planned_looks: int) -> float:
    """Alpha for look `look` (1-based) under a quadratic spending function.

    The pieces sum to `alpha` over the planned looks, so repeatedly testing a growing
    window does not inflate the false-rollback rate (Bonferroni over looks); looks past
    the plan get nothing more.
    """
    planned = max(planned_looks, 1)
    if look > planned:
        return 0.0
    return alpha * ((look / planned) ** 2 - ((look - 1) / planned) ** 2)


def log_e_values(n_baseline: Any, n_canary: Any, rho: Any, prior_strength: float, where: Any = None) -> Any:
    """`one_sided_log_bayes_factor` over arrays, for counts that need not be whole.

    Counts divided by a dispersion factor are fractional (quasi-likelihood); the Beta
    integrals take them as they are. Returns −inf where the canary is clearly better, and
    outside `where` (the Beta integrals are most of the cost, and a test that is not worse
    counts for nothing anyway).
    """
    import numpy as np
    from scipy.special import betaincc, gammaln, log_ndtr

    b, c = np.broadcast_arrays(np.asarray(n_baseline, dtype=float), np.asarray(n_canary, dtype=float))
    given = np.asarray(rho, dtype=float)
    # The prior's mass above ρ, once per distinct ρ given (a row), not per count.
    prior_tail = np.broadcast_to(
        np.log(betaincc(prior_strength * given, prior_strength * (1 - given), given)), b.shape
    )
    share = np.broadcast_to(given, b.shape)
    a_c, a_b = prior_strength * share, prior_strength * (1 - share)
    full = (
        gammaln(prior_strength)
        - gammaln(prior_strength + b + c)
        + gammaln(a_b + b)
        - gammaln(a_b)
        + gammaln(a_c + c)
        - gammaln(a_c)
        - b * np.log1p(-share)
        - c * np.log(share)
    )
    # Truncating the prior to θ > ρ at most divides by its mass there. A test that even so
    # stays under 1 is left out (−inf, less evidence than it has): together such tests add
    # less than 1 to a mixture that must reach 1/α, and they are most of the integrals.
    keep = (b + c > 0) & (full - prior_tail > 0.0)
    if where is not None:
        keep &= np.asarray(where, dtype=bool)
    result = np.full(b.shape, -np.inf)
    if keep.any():
        ac, ab, sh = a_c[keep], a_b[keep], share[keep]
        post_c, post_b = ac + c[keep], ab + b[keep]
        big = post_c + post_b > 2000
        posterior = np.empty(post_c.shape)
        # The posterior's mass above ρ; past a few thousand counts the Beta is normal to
        # well within what decides a test, and its integral the slowest thing here.
        n = post_c[big] + post_b[big]
        mean = post_c[big] / n
        posterior[big] = log_ndtr((mean - sh[big]) / np.sqrt(mean * (1 - mean) / (n + 1)))
        with np.errstate(divide="ignore"):
            posterior[~big] = np.log(betaincc(post_c[~big], post_b[~big], sh[~big]))
        result[keep] = full[keep] + posterior - prior_tail[keep]
    return result


# ---- over-dispersion ----------------------------------------------------------------------
#
# Requests are not independent draws: the canary's pods and the baseline's differ a little
# from minute to minute, so each arm's share of the bad requests varies between intervals
# more than a binomial would. Under a beta-binomial with intra-interval correlation ρ
# (Williams 1982), n bad requests carry the information of n / (1 + (n − 1)ρ) independent
# ones, and dividing the counts by φ = Σ n(1 + (n − 1)ρ) / Σ n is the quasi-likelihood
# correction (Wedderburn 1974; McCullagh & Nelder 1989, §4.5). ρ is estimated from the
# successive differences of the per-interval shares (von Neumann's MSSD), so a level that
# moves because a regression began is not taken for noise.

# How much each arm's rate may plausibly wobble between intervals on its own: the variance
# of its logarithm, here that of a gamma with a coefficient of variation of 1 (π²/6), i.e.
# either arm's rate halving or doubling from one interval to the next is ordinary. With
# the share p of bad requests in the canary, that bounds ρ at 2·v·p(1 − p).
MAX_LOG_WOBBLE = math.pi**2 / 6


# The sums over pairs of successive intervals that the dispersion bound reads: their χ², their
# weight Σ 1/(1/nᵢ + 1/nⱼ), and how many pairs there were.
Pair = tuple[float, float]
PairSums = list[float]


def observe_interval(
    state: dict[str, Any], canary: float, baseline: float, length: float = 1.0
) -> Pair | None:
    """Fold one interval's bad requests of each arm into the JSON-able `state`. Returns what
    the pair of this interval and the one before added to the sums, if it added anything,
    so a restarted test can keep the sums of the pairs inside its own window. `length` is
    the interval's, in looks (`wobble_share`)."""
    n = canary + baseline
    if n <= 0:
        return None
    state["sk"] = state.get("sk", 0.0) + n
    state["skk"] = state.get("skk", 0.0) + n * n
    state["sc"] = state.get("sc", 0.0) + canary
    recent: list[list[float]] = state.setdefault("recent", [])
    share = canary / n
    added = _pair(share, n, *recent[-1][:2]) if recent else None
    if added is not None:
        before = recent[-1][2] if len(recent[-1]) > 2 else 1.0
        added = (added[0], added[1] * wobble_share(length, before))
        state["chi1"] = add_pair(state.get("chi1"), added)
    recent.append([share, n, length])
    del recent[:-1]
    return added


def wobble_share(length: float, before: float) -> float:
    """How much of a look's wobble a pair of intervals of these lengths (in looks) holds.

    Pods' wobble from one look to the next averages out over a longer interval: a missed
    scrape makes the next interval two or three looks long, and its share wobbles a half or
    a third as much. Read as if every interval were one look long, pairs across missed
    scrapes made the wobble look smaller than it is, and a first judged look after a warm-up
    with two missed scrapes could be taken for a regression. Read this way, a wobble that
    does not average out (one that drifts) only reads as larger: the safe side. An interval
    shorter than a look is read as one look long, for the same reason."""
    return (1 / max(length, 1.0) + 1 / max(before, 1.0)) / 2


def add_pair(sums: PairSums | None, pair: Pair) -> PairSums:
    chi, weight, count = sums if sums else (0.0, 0.0, 0)
    return [chi + pair[0], weight + pair[1], count + 1]


def _pair(share: float, n: float, before_share: float, before_n: float) -> Pair | None:
    """Two successive intervals' squared difference of shares, as a χ², and its weight.

    Each squared difference is scaled by the binomial variance at the pair's own pooled
    share, which makes it the 2×2 table's Pearson χ², and by (N − 1)/N, which makes that
    exactly 1 on average given the table's margins (E. S. Pearson's N − 1 χ²), whatever
    the share and however few the requests. So a burst is measured against its own level,
    not the quiet intervals around it, and a pair with every request in one arm, whose
    margins leave nothing to vary, is no evidence at all: a canary's slow pods put every
    slow request of a tail bound in the canary, interval after interval, and a share pooled
    over all intervals would count that as proof that the share never varies.
    """
    # Under a request the share is not a proportion of anything.
    if n < 1 or before_n < 1:
        return None
    both = n + before_n
    pooled = (share * n + before_share * before_n) / both
    if not 0.0 < pooled < 1.0:
        return None
    spread = 1 / n + 1 / before_n
    unbiased = (both - 1) / both
    return unbiased * (share - before_share) ** 2 / (spread * pooled * (1 - pooled)), unbiased / spread


def dispersion(state: dict[str, Any], assurance: float) -> float:
    """φ ≥ 1 to divide the counts by: the quasi-likelihood factor at an upper bound of ρ.

    E[(sᵢ − sⱼ)²] = p(1 − p)((1 − ρ)vᵢⱼ + 2ρ) with vᵢⱼ = 1/nᵢ + 1/nⱼ, so the m squared
    differences, each divided by p(1 − p)vᵢⱼ at the pair's own pooled share, sum to about
    (1 − ρ)m + 2ρΣ1/vᵢⱼ, which gives ρ̂. The sum is taken as χ² with 2m/3 degrees of freedom (the MSSD's variance
    is 3/2 that of a sample variance) and ρ at its upper `assurance` bound, held to what
    pods plausibly do (`MAX_LOG_WOBBLE`) unless the point estimate itself says more; before
    any difference, ρ is that plausible bound. A sum below its null expectation m is read as
    m, so the bound never says less than "binomial, as far as m pairs can tell". φ = 1 + ρ(Σn²/Σn − 1): with at most one bad
    request an interval it is 1 whatever ρ is, as Poisson counts are exact there.
    """
    return float(dispersions(state, assurance, [None])[0])


def dispersions(state: dict[str, Any], assurance: float, pairs: list[PairSums | None]) -> Any:
    """`dispersion` once for each entry of `pairs`, as an array: from the pair sums given
    instead of those of every interval in `state` (None: those). The share and the spread of
    interval sizes are always every interval's."""
    return dispersion_table([state], assurance, [pairs])[:, 0]


def dispersion_table(
    states: list[dict[str, Any]], assurance: float, pairs: list[list[PairSums | None]]
) -> Any:
    """`dispersions` for several keys at once (rows: the entries of each key's `pairs`, all
    as long; columns: keys), bounded in one call: a histogram gate weighs a dozen keys and
    two dozen restarts at every look."""
    import numpy as np

    rows = len(pairs[0]) if pairs else 0
    phi = np.ones((rows, len(states)))
    cols, ceilings, plausible, sums = [], [], [], []
    for col, (state, entries) in enumerate(zip(states, pairs, strict=True)):
        total, squares = state.get("sk", 0.0), state.get("skk", 0.0)
        if total <= 0 or float(squares / total) <= 1.0:
            continue
        # All bad requests in one arm so far says nothing about how the share varies.
        p = min(max(state.get("sc", 0.0) / total, 0.5 / total), 1 - 0.5 / total)
        cols.append(col)
        ceilings.append(float(squares / total))
        # What pods plausibly do, at the share seen so far.
        plausible.append([min(1.0, 2 * MAX_LOG_WOBBLE * p * (1 - p))])
        every = _identifying(state.get("chi1"))
        carried = state.get("carried")
        if carried is not None:
            # Pairs of the steps before, put back at this step's share (`learned_pairs`).
            every = [every[0] + carried[0], every[1] + carried[1] / (p * (1 - p)), every[2] + carried[2]]
        sums.append([every if row is None else _identifying(row) for row in entries])
    if cols:
        table = np.array(sums, dtype=float).reshape(len(cols), rows, 3)
        observed, identified, m = table[..., 0], table[..., 1], table[..., 2]
        rho = np.minimum(excess_bound(observed, identified, m, np.array(plausible), assurance), 1.0)
        phi[:, cols] = (1.0 + rho * (np.array(ceilings)[:, None] - 1.0)).T
    return phi


def _identifying(sums: PairSums | None) -> list[float]:
    """Pair sums as [Σχ², what they identify of ρ, pairs]: E[Σχ²] = m + ρ·(2·Σweight − m)."""
    chi, weight, count = sums if sums else (0.0, 0.0, 0)
    return [chi, 2 * weight - count, count]


def learned_pairs(state: dict[str, Any], carried: list[float] | None, most: float) -> list[float] | None:
    """A key's pairs for the next step of the same service, free of its share: ρ is
    p(1 − p)·τ², τ² the wobble of the log ratio of the arms' rates, the same at any split
    of traffic, so what they identify is carried times p(1 − p) and the next step divides by
    its own (`dispersion_table`). Those the step was carried in are added, and the whole is
    worth at most `most` pairs. None if there is nothing to carry."""
    now = [0.0, 0.0, 0.0]
    total = state.get("sk", 0.0)
    if total > 0 and state.get("chi1"):
        p = min(max(state.get("sc", 0.0) / total, 0.5 / total), 1 - 0.5 / total)
        now = _identifying(state["chi1"])
        now[1] *= p * (1 - p)
    return carry_pairs(now, carried, most)


def carry_pairs(now: list[float], carried: list[float] | None, most: float) -> list[float] | None:
    """A step's [Σχ², identification free of the split, pairs] and those it was carried in,
    together, scaled down to at most `most` pairs at the same mean χ² and identification a
    pair. None if they identify nothing."""
    chi, identified, count = now
    if carried is not None:
        chi, identified, count = chi + carried[0], identified + carried[1], count + carried[2]
    if count <= 0 or identified <= 0:
        return None
    scale = min(1.0, most / count)
    return [float(f"{x * scale:.10g}") for x in (chi, identified, count)]


def excess_bound(observed: Any, identified: Any, m: Any, plausible: Any, assurance: float) -> Any:
    """An upper bound of the excess variance x ≥ 0 in E[Σ χ²] = m + x·identified, from m
    pairs whose χ² sum is `observed`: the sum taken as χ² with 2m/3 degrees of freedom (the
    MSSD's variance is 3/2 that of a sample variance) at its upper `assurance` bound, held
    to what pods plausibly do unless the point estimate itself says more; before any pair
    (or one that identifies nothing) it is that plausible value. Arrays, one row a bound.

    Pairs that agree better than binomial noise would are chance, not proof that the share
    never varies: a χ² sum below its null expectation m is read as m. Read as it was, a
    first pair that happened to agree put the bound at 0 whatever the pods did, and busy
    good canaries then failed on the next wobble.
    """
    import numpy as np
    from scipy.special import chdtri

    observed, identified, m = (np.asarray(a, dtype=float) for a in (observed, identified, m))
    found = np.array(np.broadcast_to(plausible, observed.shape), dtype=float)
    known = (m > 0) & (identified > 1e-12)
    if known.any():
        plaus = found[known]
        m, observed, identified = m[known], observed[known], identified[known]
        freedom = 2 * m / 3
        upper = np.maximum(observed, m) * freedom / chdtri(freedom, assurance)
        point = (observed - m) / identified
        found[known] = np.maximum(np.minimum((upper - m) / identified, np.maximum(plaus, point)), 0.0)
    return found


# ---- reading a histogram between its bounds ------------------------------------------------


def interpolate_survival(low: float, high: float, s_low: float, s_high: float, x: float) -> float:
    """The share slower than x, between bounds `low` < x ≤ `high` where it is `s_low`, `s_high`.

    Straight in log share against log latency: exact for a power-law tail, and an
    *under*estimate for any tail that falls faster (lognormal, gamma, Weibull, and the
    mixtures of them that real latency is), because the log survival is concave there and
    a chord lies under it. Probit or straight-line interpolation overstate the tail of a
    mixture, and a busy canary then looks slower than it is; the gate would rather read
    the canary a little faster than it is. A share of 0 at the higher bound is taken as is.
    """
    if x >= high or s_low <= s_high or s_high <= 0.0:
        return s_high
    t = (math.log(x) - math.log(low)) / (math.log(high) - math.log(low))
    return math.exp(math.log(s_low) + t * (math.log(s_high) - math.log(s_low)))


# ---- a histogram's bounds read together ----------------------------------------------------


def shift_weights(shares: Any) -> tuple[Any, Any]:
    """How to read a histogram's bounds together for a shift of log latency, at the pooled
    shares slower than each (nested: a higher bound has the smaller share): the weights on
    the bounds' probit differences, and the covariance of those differences per unit of
    1/n_c + 1/n_b.

    A shift moves every bound's probit alike, while each bound's binomial noise is partly its
    own, so a weighted mean of the differences is surer than any one. Both arms' shares at
    bounds b < b' are correlated, Cov = q'(1 − q)/n at the pooled shares q ≥ q'; the weights
    are the generalised least-squares ones, C⁻¹1, held non-negative so that every bound's
    difference being ≤ 0 under the null keeps the mean ≤ 0, and summing to 1. They depend on
    the shares given alone, never on either arm's own, and a wobble that moves every bound's
    probit by the same amount leaves them as they are."""
    import numpy as np
    from scipy.special import ndtri

    q = np.asarray(shares, dtype=float)
    z = ndtri(q)
    density = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cov = np.minimum.outer(q, q) * (1 - np.maximum.outer(q, q)) / np.outer(density, density)
    ridge = 1e-9 * float(np.mean(np.diag(cov)))
    raw = np.clip(np.linalg.solve(cov + ridge * np.eye(len(q)), np.ones(len(q))), 0.0, None)
    weights = raw / raw.sum() if raw.sum() > 0 else np.full(len(q), 1 / len(q))
    return weights, cov
