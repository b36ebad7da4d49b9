"""Anytime-valid statistics: confidence sequences that stay valid however often they are looked at.

A fixed-horizon test (a z-test, McNemar at a planned n) checked every hour inflates its error
rates: with 48 looks, a 5 % test raises a false alarm far more than 5 % of the time. A confidence
sequence (CS) instead covers the truth at *every* time at once, P(∀t: θ ∈ C_t) ≥ 1 − α, so a
decision taken at whatever look first decides keeps its error rate under α (optional stopping
and continuation are free). Two constructions are used, both closed-form and O(n):

- **means of bounded observations** (error rate, task completion, scaled satisfaction): the
  predictable plug-in empirical-Bernstein CS of Waudby-Smith & Ramdas (2023), "Estimating means
  of bounded random variables by betting", JRSS-B 86(1), Theorem 2 — adapts to the variance, so a
  2 % error rate gets a much tighter sequence than the worst case;
- **quantiles** (p95 latency): the CS for a quantile from a CS for the proportion of
  observations below it (Howard & Ramdas 2022, "Sequential estimation of quantiles with
  applications to A/B-testing and best-arm identification", Bernoulli 28(3)), with the normal
  mixture boundary of Robbins (1970) / Howard et al. (2021, Ann. Statist. 49(2), eq. 3.7).

Comparisons of two streams (candidate against baseline) use one-sided CSs at α/2 per stream: a
wrong decision needs one of the two bounds it compares to be wrong, so by the union bound each
decision errs with probability ≤ α, at every look; unequal traffic (a 5 % canary) is no problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Decision = Literal["pass", "fail", "undecided"]


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float
    estimate: float
    n: int


def mean_cs(x: Sequence[float] | np.ndarray, alpha: float, *, c: float = 0.5) -> Interval:
    """Predictable plug-in empirical-Bernstein CS for the mean of observations in [0, 1].

    Valid at every n simultaneously (Waudby-Smith & Ramdas 2023, Thm 2); `c` truncates the bets.
    """
    xs = np.asarray(x, dtype=float)
    if len(xs) == 0:
        return Interval(0.0, 1.0, math.nan, 0)
    lower, upper, estimate = mean_cs_path(xs, alpha, c=c)
    return Interval(float(lower[-1]), float(upper[-1]), float(estimate[-1]), len(xs))


def mean_cs_path(
    x: np.ndarray, alpha: float, *, c: float = 0.5, two_sided: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CS after every observation at once (lower, upper, running mean), in O(n).

    With `two_sided=False`, `lower` and `upper` are each a one-sided (1 − α) confidence sequence."""
    xs = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    i = np.arange(1, len(xs) + 1, dtype=float)
    # Running mean and variance estimates with a prior of one pseudo-observation (1/2, 1/4).
    mu_hat = (0.5 + np.cumsum(xs)) / (i + 1)
    sigma2 = (0.25 + np.cumsum((xs - mu_hat) ** 2)) / (i + 1)
    prev_sigma2 = np.concatenate(([0.25], sigma2[:-1]))
    prev_mu = np.concatenate(([0.5], mu_hat[:-1]))
    log_term = math.log((2 if two_sided else 1) / alpha)
    lam = np.minimum(np.sqrt(2 * log_term / (prev_sigma2 * i * np.log1p(i))), c)
    psi = (-np.log1p(-lam) - lam) / 4
    weight = np.cumsum(lam)
    centre = np.cumsum(lam * xs) / weight
    radius = (log_term + np.cumsum(4 * (xs - prev_mu) ** 2 * psi)) / weight
    return np.maximum(0.0, centre - radius), np.minimum(1.0, centre + radius), np.cumsum(xs) / i


def one_sided_bounds(x: Sequence[float] | np.ndarray, alpha: float) -> Interval:
    """A lower and an upper bound, each a one-sided (1 − α) confidence sequence."""
    xs = np.asarray(x, dtype=float)
    if len(xs) == 0:
        return Interval(0.0, 1.0, math.nan, 0)
    lower, upper, estimate = mean_cs_path(xs, alpha, two_sided=False)
    return Interval(float(lower[-1]), float(upper[-1]), float(estimate[-1]), len(xs))


def bernoulli_variance_proxy(p: float) -> float:
    """The optimal sub-Gaussian variance proxy of Bernoulli(p) (Kearns & Saul 1998): ≤ 1/4."""
    if p <= 0 or p >= 1 or abs(p - 0.5) < 1e-9:
        return 0.25
    return (1 - 2 * p) / (2 * math.log((1 - p) / p))


def normal_mixture_radius(n: int, alpha: float, *, sigma2: float = 0.25, rho: float | None = None) -> float:
    """Two-sided normal-mixture boundary for a mean of n sub-Gaussian(σ²) observations.

    P(∃n: |mean_n − μ| ≥ r_n) ≤ α (Howard et al. 2021, eq. 3.7). `rho` tunes where the boundary is
    tightest; any ρ > 0 is valid, and the default suits a few hundred to a few thousand observations.
    """
    if n == 0:
        return math.inf
    rho = rho if rho is not None else sigma2 * 500
    v = n * sigma2
    return math.sqrt(2 * (v + rho) * math.log(math.sqrt((v + rho) / rho) / (alpha / 2))) / n


def quantile_cs(x: Sequence[float] | np.ndarray, p: float, alpha: float) -> Interval:
    """CS for the p-quantile: the order statistics at p ∓ r_n, r_n from a CS for a Bernoulli(p) mean."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = len(xs)
    if n == 0:
        return Interval(-math.inf, math.inf, math.nan, 0)
    r = normal_mixture_radius(n, alpha, sigma2=bernoulli_variance_proxy(p))
    # Whp at least n(p − r) and at most n(p + r) observations lie at or below q_p, so q_p lies
    # between the ⌈n(p − r)⌉-th and the (⌊n(p + r)⌋ + 1)-th order statistics (1-based).
    lo, hi = math.ceil(n * (p - r)), math.floor(n * (p + r)) + 1
    lower = float(xs[lo - 1]) if lo >= 1 else -math.inf
    upper = float(xs[hi - 1]) if hi <= n else math.inf
    return Interval(lower, upper, float(np.quantile(xs, p)), n)


@dataclass(frozen=True)
class Comparison:
    """candidate vs baseline under a relative rule, decided by the two streams' CSs."""

    decision: Decision
    candidate: Interval
    baseline: Interval
    bound: float  # the allowed value the decision compares against (at the decisive CS end)
    detail: str


def compare_rates(
    candidate: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    margin: float,
    higher_is_better: bool,
    alpha: float = 0.05,
) -> Comparison:
    """Is the candidate's mean within `margin` of the baseline's ("error ≤ old + 0.5 %",
    "completion ≥ old − 2 %")? `fail` when the CSs show it is not, `pass` when they show it is."""
    # Each decision uses one bound of each stream, each a one-sided CS at α/2: a wrong "fail" (or a
    # wrong "pass") needs one of two bounds to be wrong, so each decision errs with probability ≤ α.
    c, b = one_sided_bounds(candidate, alpha / 2), one_sided_bounds(baseline, alpha / 2)
    if higher_is_better:  # need candidate ≥ baseline − margin
        if c.upper < b.lower - margin:
            return Comparison(
                "fail", c, b, b.lower - margin, f"candidate ≤ {c.upper:.4f} < baseline − margin"
            )
        if c.lower >= b.upper - margin:
            return Comparison(
                "pass", c, b, b.upper - margin, f"candidate ≥ {c.lower:.4f} ≥ baseline − margin"
            )
        return Comparison(
            "undecided", c, b, b.lower - margin, "the confidence sequences still overlap the margin"
        )
    if c.lower > b.upper + margin:  # need candidate ≤ baseline + margin
        return Comparison("fail", c, b, b.upper + margin, f"candidate ≥ {c.lower:.4f} > baseline + margin")
    if c.upper <= b.lower + margin:
        return Comparison("pass", c, b, b.lower + margin, f"candidate ≤ {c.upper:.4f} ≤ baseline + margin")
    return Comparison(
        "undecided", c, b, b.upper + margin, "the confidence sequences still overlap the margin"
    )


def compare_quantiles(
    candidate: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    p: float = 0.95,
    ratio: float = 1.2,
    alpha: float = 0.05,
) -> Comparison:
    """Is the candidate's p-quantile ≤ ratio × the baseline's ("p95 ≤ old + 20 %")?"""
    c, b = quantile_cs(candidate, p, alpha / 2), quantile_cs(baseline, p, alpha / 2)
    if c.lower > ratio * b.upper:
        return Comparison(
            "fail", c, b, ratio * b.upper, f"candidate p{p * 100:g} ≥ {c.lower:.1f} > {ratio}× baseline"
        )
    if c.upper <= ratio * b.lower:
        return Comparison(
            "pass", c, b, ratio * b.lower, f"candidate p{p * 100:g} ≤ {c.upper:.1f} ≤ {ratio}× baseline"
        )
    return Comparison("undecided", c, b, ratio * b.upper, "the confidence sequences still overlap the bound")
