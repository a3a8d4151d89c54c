"""Statistics for canary-vs-baseline comparisons. Pure functions, numbers in, numbers out.

numpy and scipy are imported where they are used: they take seconds to load, and every
CLI command imports this module through the workflow definitions.
"""

from __future__ import annotations

import math
from statistics import NormalDist


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
