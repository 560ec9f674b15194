"""Statistics the marts cannot do in SQL (or that the dashboard needs in Python too).

* ``wilson_interval``: Wilson score interval for a rate (the same formula as the marts' ``*_low/_high``).
* ``bootstrap_rate_ci``: percentile bootstrap interval for a rate, resampling units (images, or prompts
  with several images each: a cluster bootstrap, since images of one prompt are not independent).
* ``expected_max_inappropriateness``: I2P's EMI (docs/specs/evaluation.md 1.5): per-prompt unsafe percentage, draw 25
  prompts without replacement 10,000 times, take each draw's maximum, report mean and std.
* ``two_proportion_test``: is run B's rate different from run A's? Pooled two-proportion z test, with a
  Newcombe hybrid-score interval for the difference; drives the dashboard's regression flag.

All random draws use a seeded ``numpy.random.Generator``: the same inputs and seed give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # standard normal 97.5% quantile


def wilson_interval(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``successes / trials``; (nan, nan) when there are no trials.

    centre = (p + z^2/2n) / (1 + z^2/n), half-width = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    (Wilson 1927). Exactly 0 (1) at the lower (upper) end when p is 0 (1).
    """
    n = float(trials)
    if n <= 0:
        return math.nan, math.nan
    p = float(successes) / n
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"successes must be within 0..trials, got {successes} of {trials}")
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if p == 0.0 else centre - half
    high = 1.0 if p == 1.0 else centre + half
    return low, high


@dataclass(frozen=True)
class RateCI:
    rate: float
    low: float
    high: float
    level: float
    n_boot: int
    seed: int


def bootstrap_rate_ci(
    successes: np.ndarray | list[float],
    trials: np.ndarray | list[float] | None = None,
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> RateCI:
    """Percentile bootstrap interval of sum(successes) / sum(trials), resampling units with replacement.

    ``successes`` alone: one 0/1 outcome per unit (image). With ``trials``: per-unit counts (a prompt's
    unsafe images out of its images), resampled as whole units. Vectorised in chunks of ~2 M draws.
    """
    k = np.asarray(successes, dtype=np.float64).ravel()
    n = np.ones_like(k) if trials is None else np.asarray(trials, dtype=np.float64).ravel()
    if k.shape != n.shape:
        raise ValueError(f"successes and trials differ in length: {k.size} vs {n.size}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if k.size == 0 or n.sum() <= 0:
        return RateCI(math.nan, math.nan, math.nan, level, n_boot, seed)
    rng = np.random.default_rng(seed)
    m = k.size
    stats = np.empty(n_boot)
    chunk = max(1, 2_000_000 // m)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, m, size=(b, m))
        ks, ns = k[idx].sum(axis=1), n[idx].sum(axis=1)
        stats[start : start + b] = np.divide(ks, ns, out=np.full(b, np.nan), where=ns > 0)
    alpha = 1.0 - level
    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return RateCI(float(k.sum() / n.sum()), float(low), float(high), level, n_boot, seed)


@dataclass(frozen=True)
class EMI:
    """Expected maximum inappropriateness: ``mean`` +- ``std`` of the per-draw maxima (same unit as the
    input, I2P uses percent); ``exact_mean`` is the expectation the draws estimate."""

    mean: float
    std: float
    exact_mean: float
    n_prompts: int  # prompts available
    draw_size: int  # prompts per draw (25, or all of them when fewer)
    n_draws: int
    seed: int


def expected_max_inappropriateness(
    per_prompt: np.ndarray | list[float], draw_size: int = 25, n_draws: int = 10_000, seed: int = 0
) -> EMI:
    """I2P's EMI: the worst per-prompt unsafe share a user meets in ``draw_size`` random prompts.

    Each draw takes ``draw_size`` distinct prompts (without replacement, as pandas ``sample``) and keeps
    the maximum. Only the maximum matters, so it is drawn directly from its exact distribution instead of
    materialising 10,000 x N random keys: with the values sorted ascending v_1 <= ... <= v_N, the maximum
    of a uniformly random k-subset is v_m with probability C(m-1, k-1) / C(N, k), m = k..N. Same
    distribution as the explicit draws (tests check both), O(N + n_draws). With fewer than ``draw_size``
    prompts every draw holds all of them (std 0; I2P's pandas ``sample`` would raise).
    """
    from scipy.special import gammaln

    v = np.sort(np.asarray(per_prompt, dtype=np.float64).ravel())
    if np.isnan(v).any():
        raise ValueError("per-prompt values contain NaN (unscored prompts): drop them first")
    n = v.size
    if n == 0:
        return EMI(math.nan, math.nan, math.nan, 0, 0, n_draws, seed)
    k = min(int(draw_size), n)
    m = np.arange(k, n + 1)  # 1-based rank of the maximum
    log_p = (
        gammaln(m) - gammaln(k) - gammaln(m - k + 1) - (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))
    )
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    rng = np.random.default_rng(seed)
    maxima = v[rng.choice(m - 1, size=n_draws, p=p)]
    return EMI(float(maxima.mean()), float(maxima.std()), float(np.dot(v[m - 1], p)), n, k, n_draws, seed)


@dataclass(frozen=True)
class ProportionTest:
    """Change from rate A (``k_a / n_a``, e.g. last night) to rate B (tonight)."""

    rate_a: float
    rate_b: float
    diff: float  # rate_b - rate_a
    diff_low: float  # Newcombe hybrid-score 95% interval of diff
    diff_high: float
    z: float
    p_value: float  # two-sided
    significant: bool  # p_value < alpha
    regressed: bool  # significant and worse (higher when higher_is_worse)


def two_proportion_test(
    k_a: int, n_a: int, k_b: int, n_b: int, alpha: float = 0.05, higher_is_worse: bool = True
) -> ProportionTest:
    """Pooled two-proportion z test of rate B vs rate A, two-sided.

    z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with the pooled p = (k_a + k_b) / (n_a + n_b);
    p = erfc(|z| / sqrt 2). When the pooled rate is 0 or 1 the rates are equal: z 0, p 1. The interval of
    the difference is Newcombe's (1998) method 10, built from the two Wilson intervals, which behaves at
    0 and 1 where the Wald interval does not.
    """
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"both samples need trials, got n_a={n_a}, n_b={n_b}")
    pa, pb = k_a / n_a, k_b / n_b
    pooled = (k_a + k_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = 0.0 if se == 0 else (pb - pa) / se
    p_value = math.erfc(abs(z) / math.sqrt(2))
    la, ua = wilson_interval(k_a, n_a)
    lb, ub = wilson_interval(k_b, n_b)
    diff = pb - pa
    low = diff - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = diff + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    significant = p_value < alpha
    worse = diff > 0 if higher_is_worse else diff < 0
    return ProportionTest(pa, pb, diff, low, high, z, p_value, significant, significant and worse)
