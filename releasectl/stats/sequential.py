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
- **quantiles** (p95 latency): the CS for a quantile from a CS for the count of observations
  below it (Howard & Ramdas 2022, "Sequential estimation of quantiles with applications to
  A/B-testing and best-arm identification", Bernoulli 28(3)), with the beta-binomial mixture
  boundary of Howard et al. (2021, Ann. Statist. 49(2), §3.2);
- **paired deltas** (candidate against baseline on the same cases): an always-valid sign test on
  the discordant pairs (a mixture SPRT, Ramdas et al. 2023) and a CS for the mean paired
  difference (the betting CS above), which also decides non-inferiority margins.

Comparisons of two streams (candidate against baseline) use one-sided CSs at α/2 per stream: a
wrong decision needs one of the two bounds it compares to be wrong, so by the union bound each
decision errs with probability ≤ α, at every look; unequal traffic (a 5 % canary) is no problem.

The gate's sequential replay asks one-sided questions about known thresholds, so it uses sequences
tuned to them (end of the module): a rate against a constant by the beta mixture restricted to
that side of the constant, and a paired delta by a betting e-process on the paired differences
whose bets are tuned to the slice's size in the frozen suite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    """The CS after every observation at once (lower, upper, running mean), in O(n), along the
    last axis (a 2-D array is many streams at once).

    With `two_sided=False`, `lower` and `upper` are each a one-sided (1 − α) confidence sequence."""
    xs = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    i = np.arange(1, xs.shape[-1] + 1, dtype=float)
    # Running mean and variance estimates with a prior of one pseudo-observation (1/2, 1/4).
    mu_hat = (0.5 + np.cumsum(xs, axis=-1)) / (i + 1)
    sigma2 = (0.25 + np.cumsum((xs - mu_hat) ** 2, axis=-1)) / (i + 1)
    prev_sigma2 = np.concatenate((np.full(xs.shape[:-1] + (1,), 0.25), sigma2[..., :-1]), axis=-1)
    prev_mu = np.concatenate((np.full(xs.shape[:-1] + (1,), 0.5), mu_hat[..., :-1]), axis=-1)
    log_term = math.log((2 if two_sided else 1) / alpha)
    lam = np.minimum(np.sqrt(2 * log_term / (prev_sigma2 * i * np.log1p(i))), c)
    psi = (-np.log1p(-lam) - lam) / 4
    weight = np.cumsum(lam, axis=-1)
    centre = np.cumsum(lam * xs, axis=-1) / weight
    radius = (log_term + np.cumsum(4 * (xs - prev_mu) ** 2 * psi, axis=-1)) / weight
    return (
        np.maximum(0.0, centre - radius),
        np.minimum(1.0, centre + radius),
        np.cumsum(xs, axis=-1) / i,
    )


def bernoulli_log_mixture(
    successes: int | np.ndarray,
    n: int | np.ndarray,
    p: float | np.ndarray,
    prior: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """log M_n(p): the Beta(`prior`) mixture of Bernoulli likelihood ratios against rate p after
    `successes` of n (Robbins 1970). Under rate p it is a non-negative martingale with M_0 = 1."""
    from scipy.special import betaln, xlog1py, xlogy

    k, m, q = np.asarray(successes, dtype=float), np.asarray(n, dtype=float), np.asarray(p, dtype=float)
    a, b = prior
    return np.asarray(betaln(a + k, b + m - k) - betaln(a, b) - xlogy(k, q) - xlog1py(m - k, -q))


def bernoulli_cs_bounds(
    successes: int | np.ndarray,
    n: int | np.ndarray,
    alpha: float,
    *,
    prior: tuple[float, float] = (0.5, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the beta-mixture CS {p : M_n(p) < 1/α} for arrays of counts at once.

    log M_n(p) is convex in p and below log(1/α) at p = k/n, so each end is found by bisection
    between k/n and 0 (or 1); where k = 0 (k = n) the lower (upper) end is 0 (1)."""
    k = np.asarray(successes, dtype=float)
    m = np.broadcast_to(np.asarray(n, dtype=float), k.shape)
    bound = math.log(1 / alpha)
    p_hat = np.divide(k, m, out=np.full(k.shape, 0.5), where=m > 0)

    def end(out: np.ndarray) -> np.ndarray:
        inside, far = p_hat.copy(), out.copy()
        for _ in range(50):
            mid = (inside + far) / 2
            outside = bernoulli_log_mixture(k, m, mid, prior) >= bound
            inside, far = np.where(outside, inside, mid), np.where(outside, mid, far)
        return inside

    eps = 1e-15
    lower = np.where((k == 0) | (m == 0), 0.0, end(np.full(k.shape, eps)))
    upper = np.where((k == m) | (m == 0), 1.0, end(np.full(k.shape, 1 - eps)))
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def bernoulli_cs(
    successes: int, n: int, alpha: float, *, prior: tuple[float, float] = (0.5, 0.5)
) -> Interval:
    """CS for a pass rate from 0/1 outcomes: {p : M_n(p) < 1/α}, valid at every n at once.

    The beta-mixture martingale uses the Bernoulli likelihood itself, so it is tight at both ends
    (a 0.92 rate after 100 cases: [0.80, 0.98]) and depends on the count only, not the order."""
    if n == 0:
        return Interval(0.0, 1.0, math.nan, 0)
    lower, upper = bernoulli_cs_bounds(successes, n, alpha, prior=prior)
    return Interval(float(lower), float(upper), successes / n, n)


def one_sided_bounds(x: Sequence[float] | np.ndarray, alpha: float) -> Interval:
    """A lower and an upper bound, each a one-sided (1 − α) confidence sequence."""
    xs = np.asarray(x, dtype=float)
    if len(xs) == 0:
        return Interval(0.0, 1.0, math.nan, 0)
    lower, upper, estimate = mean_cs_path(xs, alpha, two_sided=False)
    return Interval(float(lower[-1]), float(upper[-1]), float(estimate[-1]), len(xs))


def bernoulli_count_range(n: int, p: float, alpha: float, *, concentration: float = 100.0) -> tuple[int, int]:
    """The counts s of n Bernoulli(p) trials (p known) that a two-sided (1 − α) CS keeps at n.

    The beta-binomial mixture martingale M_n(s) = ∫ (π/p)^s ((1 − π)/(1 − p))^(n−s) dBeta(π) with a
    Beta(p·c, (1 − p)·c) prior is ≥ 1/α at some n with probability ≤ α (Ville); log M_n is convex in
    s, so the kept counts are an interval (Howard, Ramdas, McAuliffe & Sekhon 2021, §3.2;
    Howard & Ramdas 2022). With the Bernoulli likelihood it is much tighter than a sub-Gaussian
    boundary for p far from ½: a p95 gets a finite upper bound from a few hundred observations."""
    from scipy.special import betaln

    if n == 0:
        return 0, 0
    a, b = p * concentration, (1 - p) * concentration
    s = np.arange(n + 1, dtype=float)
    log_m = betaln(a + s, b + n - s) - betaln(a, b) - s * math.log(p) - (n - s) * math.log1p(-p)
    kept = np.flatnonzero(log_m < math.log(1 / alpha))
    return int(kept[0]), int(kept[-1])


def quantile_cs(x: Sequence[float] | np.ndarray, p: float, alpha: float) -> Interval:
    """CS for the p-quantile: the order statistics at the ends of the count CS of the observations
    at or below it, which are Bernoulli(p) trials (Howard & Ramdas 2022)."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = len(xs)
    if n == 0:
        return Interval(-math.inf, math.inf, math.nan, 0)
    # Whp at least `lo` and at most `hi` observations lie at or below q_p, so q_p lies between the
    # lo-th and the (hi + 1)-th order statistics (1-based).
    lo, hi = bernoulli_count_range(n, p, alpha)
    lower = float(xs[lo - 1]) if lo >= 1 else -math.inf
    upper = float(xs[hi]) if hi + 1 <= n else math.inf
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
    return decide_rates(c, b, margin=margin, higher_is_better=higher_is_better)


def compare_rate_counts(
    candidate: tuple[int, int],
    baseline: tuple[int, int],
    *,
    margin: float,
    higher_is_better: bool,
    alpha: float = 0.05,
) -> Comparison:
    """`compare_rates` from counts, (successes, n) per stream, as a metrics source such as
    Prometheus gives them: the beta-mixture CS (`bernoulli_cs`) depends on the counts only, not
    on the order of the outcomes, so counts read at any looks form one confidence sequence."""
    # Each end of a two-sided CS at α/2 is a one-sided CS at α/2 (Ville's bound covers both ends).
    c = bernoulli_cs(*candidate, alpha / 2)
    b = bernoulli_cs(*baseline, alpha / 2)
    return decide_rates(c, b, margin=margin, higher_is_better=higher_is_better)


def decide_rates(c: Interval, b: Interval, *, margin: float, higher_is_better: bool) -> Comparison:
    """The relative rule on two streams' bounds (each end a one-sided CS at α/2): the one decision
    `compare_rates` and `compare_rate_counts` share."""
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
    return decide_quantiles(c, b, p=p, ratio=ratio)


def decide_quantiles(c: Interval, b: Interval, *, p: float, ratio: float) -> Comparison:
    """The rule "candidate p-quantile ≤ ratio × baseline's" on two quantile CSs (each at α/2): the decision
    `compare_quantiles` makes, for any CS of the quantiles (from histogram buckets, say)."""
    if c.lower > ratio * b.upper:
        return Comparison(
            "fail", c, b, ratio * b.upper, f"candidate p{p * 100:g} ≥ {c.lower:.1f} > {ratio}× baseline"
        )
    if c.upper <= ratio * b.lower:
        return Comparison(
            "pass", c, b, ratio * b.lower, f"candidate p{p * 100:g} ≤ {c.upper:.1f} ≤ {ratio}× baseline"
        )
    return Comparison("undecided", c, b, ratio * b.upper, "the confidence sequences still overlap the bound")


# --- paired comparisons: an always-valid test on the discordant pairs and a CS for the delta -----

Side = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class AlwaysValidTest:
    """An e-process on the discordant pairs so far and the always-valid p-value it gives."""

    p_value: float  # min(1, 1 / max_s E_s): P(∃t: p_t ≤ α) ≤ α under the null
    e_value: float  # E_t, the evidence now
    e_max: float  # max_{s ≤ t} E_s
    candidate_better: int  # discordant pairs the candidate won (c)
    discordant: int  # b + c


def _log_region(a: np.ndarray | float, b: np.ndarray | float, p0: float, side: Side) -> np.ndarray:
    """log of a Beta(a, b) distribution's mass on the alternative's side of p0."""
    from scipy.special import betainc, betaincc

    if side == "two-sided":
        return np.zeros(np.broadcast(a, b).shape)
    with np.errstate(divide="ignore"):
        mass = betaincc(a, b, p0) if side == "greater" else betainc(a, b, p0)
        return np.log(mass)


def discordant_e_path(
    candidate_better: Sequence[bool] | np.ndarray,
    *,
    p0: float = 0.5,
    side: Side = "two-sided",
    prior: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """E after each discordant pair, in the order the pairs arrived (a mixture SPRT on their signs).

    Conditional on being discordant, a pair is won by the candidate with probability π. The null
    is π = p0 (two-sided), π ≤ p0 (`greater`) or π ≥ p0 (`less`); with p0 = ½ these are McNemar's
    null and "the candidate is no better" / "no worse". E_m is the Beta(`prior`) mixture of the
    likelihood ratios Π π^X (1 − π)^(1−X) / p0^X (1 − p0)^(1−X), the mixture restricted to the
    alternative's side for a one-sided null: under the null, each ratio (and so their mixture) is a
    non-negative supermartingale with E_0 = 1, so P(∃m: E_m ≥ 1/α) ≤ α by Ville's inequality
    (Ramdas, Grünwald, Vovk & Shafer 2023, "Game-theoretic statistics and safe anytime-valid
    inference", Statist. Sci. 38(4)). Concordant pairs multiply E by 1, so the same holds indexed by
    all pairs: any stopping rule is allowed. Closed form with the incomplete beta function, O(m)."""
    signs = np.asarray(candidate_better, dtype=bool)
    if signs.size == 0:
        return np.zeros(0)
    k = np.cumsum(signs)
    m = np.arange(1, signs.size + 1)
    return np.exp(np.minimum(discordant_log_e(k, m, p0=p0, side=side, prior=prior), 700.0))


def discordant_log_e(
    wins: int | np.ndarray,
    discordant: int | np.ndarray,
    *,
    p0: float = 0.5,
    side: Side = "two-sided",
    prior: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """log E after `discordant` discordant pairs of which the candidate won `wins` (arrays at once):
    the closed form behind `discordant_e_path`; 0 (E = 1) before the first discordant pair."""
    from scipy.special import betaln

    if not 0 < p0 < 1:
        raise ValueError(f"p0 must be in (0, 1), got {p0}")
    k, m = np.asarray(wins, dtype=float), np.asarray(discordant, dtype=float)
    a, b = prior
    return np.asarray(
        betaln(a + k, b + m - k)
        - betaln(a, b)
        - k * math.log(p0)
        - (m - k) * math.log1p(-p0)
        + _log_region(a + k, b + m - k, p0, side)
        - _log_region(a, b, p0, side)
    )


def paired_sign_test(
    candidate: Sequence[bool] | np.ndarray,
    baseline: Sequence[bool] | np.ndarray,
    *,
    p0: float = 0.5,
    side: Side = "two-sided",
) -> AlwaysValidTest:
    """The always-valid counterpart of exact McNemar on paired 0/1 outcomes in arrival order."""
    c, b = np.asarray(candidate, dtype=bool), np.asarray(baseline, dtype=bool)
    if c.shape != b.shape:
        raise ValueError(f"paired outcomes of different lengths: {c.size} and {b.size}")
    wins = c[c != b]
    path = discordant_e_path(wins, p0=p0, side=side)
    if path.size == 0:
        return AlwaysValidTest(1.0, 1.0, 1.0, 0, 0)
    e_max = float(max(1.0, np.max(path)))
    return AlwaysValidTest(min(1.0, 1.0 / e_max), float(path[-1]), e_max, int(np.sum(wins)), int(wins.size))


def paired_delta_path(
    candidate: np.ndarray, baseline: np.ndarray, alpha: float, *, at: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CS for Δ = P(candidate passes) − P(baseline passes) after every pair (along the last axis).

    The intersection of two CSs at α/2 each: the empirical-Bernstein CS of the paired differences
    d ∈ {−1, 0, 1} mapped to [0, 1], which adapts to their variance and is tight for many pairs, and
    Δ = q₁₀ − q₀₁ from beta-mixture CSs (α/4 each) for the two discordance rates, which is tight
    for few. Valid at every n for any Δ bound, a non-inferiority margin included (the sign test's
    null fixes Δ only through the unknown discordance rate). With `at` (indices along the last axis,
    one row of them per stream), only those pairs' values are returned."""
    c, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    if c.shape != b.shape:
        raise ValueError(f"paired outcomes of different shapes: {c.shape} and {b.shape}")
    lo_eb, hi_eb, _ = mean_cs_path((c - b + 1) / 2, alpha / 2)
    n = np.broadcast_to(np.arange(1, c.shape[-1] + 1), c.shape)
    wins, losses = np.cumsum(c > b, axis=-1), np.cumsum(c < b, axis=-1)
    if at is not None:
        pick = np.asarray(at)
        lo_eb, hi_eb, n, wins, losses = (
            np.take_along_axis(x, pick, axis=-1) for x in (lo_eb, hi_eb, n, wins, losses)
        )
    lo_w, hi_w = bernoulli_cs_bounds(wins, n, alpha / 4)
    lo_l, hi_l = bernoulli_cs_bounds(losses, n, alpha / 4)
    lower = np.maximum(2 * lo_eb - 1, lo_w - hi_l)
    upper = np.minimum(2 * hi_eb - 1, hi_w - lo_l)
    return lower, upper, (wins - losses) / n


def paired_delta_cs(
    candidate: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray, alpha: float
) -> Interval:
    """`paired_delta_path` after the last pair: paired 0/1 outcomes in arrival order."""
    c, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    if c.shape != b.shape:
        raise ValueError(f"paired outcomes of different lengths: {c.size} and {b.size}")
    if c.size == 0:
        return Interval(-1.0, 1.0, math.nan, 0)
    lower, upper, estimate = paired_delta_path(c, b, alpha)
    return Interval(float(lower[-1]), float(upper[-1]), float(estimate[-1]), int(c.size))


# --- one-sided sequences tuned to the rule: what a gate's pass and fail decisions need ----------
#
# A rule such as `rate(S).lower_ci >= 0.99` asks one question per side: has "rate ≥ 0.99" been
# shown (pass), or "rate < 0.99" (fail)? The two-sided CSs above spread their mixture over every
# alternative, most of which neither side needs. Here each side gets its own one-sided sequence
# whose mixture is fixed, before any data, by the rule (its threshold) and the suite (its size):
# any choice made before the data keeps Ville's bound, and one tuned to the question is far
# tighter where it decides (Howard et al. 2021, §3.5). Both constructions depend on counts only.


def bernoulli_side_log_mixture(
    successes: int | np.ndarray,
    n: int | np.ndarray,
    p: float | np.ndarray,
    region: tuple[float, float],
    prior: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """log M_n(p) for the Beta(`prior`) mixture restricted to π ∈ `region` (renormalised).

    For any fixed p it is a non-negative martingale under rate p with M_0 = 1 (a mixture of
    likelihood ratios whose mixing law does not depend on the data), so {p : M_n(p) < 1/α} is a
    (1 − α) confidence sequence; log M_n is convex in p, so the set is an interval. A region above a
    threshold t makes its lower end a one-sided CS that is tight exactly where "rate ≥ t" is decided:
    M_n(t) is then the mixture SPRT of "rate ≤ t" against the alternatives above t."""
    from scipy.special import betainc

    a, b = prior
    lo, hi = region
    k, m = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore"):
        post = np.log(np.maximum(betainc(a + k, b + m - k, hi) - betainc(a + k, b + m - k, lo), 0.0))
    prior_mass = float(betainc(a, b, hi) - betainc(a, b, lo))
    return np.asarray(bernoulli_log_mixture(k, m, p, prior) + post - math.log(prior_mass))


def _bisect(
    log_e: Callable[[np.ndarray], np.ndarray], inside: np.ndarray, far: np.ndarray, bound: float
) -> np.ndarray:
    """The end of {x : log_e(x) < bound} between `inside` (where it holds) and `far`, by bisection
    (log_e is convex or monotone in x between the two, so the end is unique)."""
    for _ in range(50):
        mid = (inside + far) / 2
        outside = log_e(mid) >= bound
        inside, far = np.where(outside, inside, mid), np.where(outside, mid, far)
    return inside


def bernoulli_side_bounds(
    successes: int | np.ndarray,
    n: int | np.ndarray,
    alpha: float,
    threshold: float,
    *,
    prior: tuple[float, float] = (0.5, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of a rate for a rule with this threshold: `lower` a one-sided (1 − α) CS from
    the mixture on [threshold, 1] (shows "rate ≥ threshold"), `upper` one from the mixture on
    [0, threshold] (shows "rate < threshold"). Each end errs with probability ≤ α at every n at
    once; a wrong pass and a wrong fail are separate errors of at most α each."""
    k = np.asarray(successes, dtype=float)
    m = np.broadcast_to(np.asarray(n, dtype=float), k.shape)
    t = min(max(float(threshold), 1e-9), 1 - 1e-9)  # a threshold at 0 or 1: the region is all but a point
    bound = math.log(1 / alpha)
    p_hat = np.divide(k, m, out=np.full(k.shape, 0.5), where=m > 0)
    eps = 1e-15

    def side(region: tuple[float, float]) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: bernoulli_side_log_mixture(k, m, p, region, prior)

    lower = _bisect(side((t, 1.0)), p_hat.copy(), np.full(k.shape, eps), bound)
    upper = _bisect(side((0.0, t)), p_hat.copy(), np.full(k.shape, 1 - eps), bound)
    lower = np.where((k == 0) | (m == 0), 0.0, lower)
    upper = np.where((k == m) | (m == 0), 1.0, upper)
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def bet_fractions(horizon: int | None = None, count: int = 12) -> np.ndarray:
    """The bets of the paired e-processes: fractions c of the largest bet that cannot ruin, log-spaced
    from c_min to 0.9 with equal weight. A bet c on differences with variance v grows fastest for a
    gap Δ at c ≈ Δ / v; the smallest gap worth finding at the suite's size N is ~√(2 log(1/α) v / N),
    so bets below c_min = √(2 log 40 / N) (v ≤ 1) never decide within the suite and only dilute the
    mixture. `horizon` is the slice's size in the frozen suite, known before the replay."""
    c_min = 0.02 if not horizon else min(0.3, math.sqrt(2 * math.log(40) / horizon))
    return np.geomspace(c_min, 0.9, count)


def paired_log_e(
    wins: int | np.ndarray,
    losses: int | np.ndarray,
    n: int | np.ndarray,
    delta0: float | np.ndarray,
    side: Literal["greater", "less"],
    fractions: np.ndarray,
) -> np.ndarray:
    """log E of the betting e-process for the null Δ ≤ δ0 (`greater`) or Δ ≥ δ0 (`less`), Δ the mean
    paired difference d ∈ {−1, 0, 1} (candidate passes and the baseline fails: +1), after n pairs
    with `wins` d = +1 and `losses` d = −1.

    E is the equal-weight mixture over `fractions` c of the capital processes Π (1 + c (d − δ0)/(1 + δ0))
    (`greater`; `less`: Π (1 + c (δ0 − d)/(1 − δ0))): each factor has mean ≤ 1 under the null and is
    ≥ 0, so each product, and the mixture, is a non-negative supermartingale with E_0 = 1 and
    P(∃n: E_n ≥ 1/α) ≤ α (Ville; Waudby-Smith & Ramdas 2023, §4, with constant bets mixed). A
    constant bet's product depends on the counts only, so E is order-free. It is monotone in δ0
    (decreasing for `greater`), so the δ0 it does not reject form a one-sided CS."""
    w, lo, m = (np.asarray(x, dtype=float)[..., None] for x in (wins, losses, n))
    d0 = np.asarray(delta0, dtype=float)[..., None]
    c = np.asarray(fractions, dtype=float)
    if side == "greater":
        scale = 1 / (1 + d0)
        up, tie, down = 1 + c * (1 - d0) * scale, 1 - c * d0 * scale, 1 - c * (1 + d0) * scale
    else:
        scale = 1 / (1 - d0)
        up, tie, down = 1 - c * (1 - d0) * scale, 1 + c * d0 * scale, 1 + c * (1 + d0) * scale
    from scipy.special import logsumexp, xlogy

    logs = xlogy(w, up) + xlogy(m - w - lo, tie) + xlogy(lo, down)
    return np.asarray(logsumexp(logs, axis=-1) - math.log(c.size))


def paired_side_bounds(
    wins: int | np.ndarray,
    losses: int | np.ndarray,
    n: int | np.ndarray,
    alpha: float,
    *,
    horizon: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) for Δ = P(candidate passes) − P(baseline passes) on matched cases: each a one-sided
    (1 − α) CS, the δ0 the betting e-process (`paired_log_e`) does not reject. One CS on the paired
    difference itself, not two marginal ones joined by a union bound; for any margin."""
    w, lo = np.asarray(wins, dtype=float), np.asarray(losses, dtype=float)
    m = np.broadcast_to(np.asarray(n, dtype=float), w.shape)
    c = bet_fractions(horizon)
    bound = math.log(1 / alpha)
    est = np.divide(w - lo, m, out=np.zeros(w.shape), where=m > 0)
    edge = 1 - 1e-12
    lower = _bisect(
        lambda d: paired_log_e(w, lo, m, d, "greater", c), est.copy(), np.full(w.shape, -edge), bound
    )
    upper = _bisect(lambda d: paired_log_e(w, lo, m, d, "less", c), est.copy(), np.full(w.shape, edge), bound)
    return np.where(m > 0, lower, -1.0), np.where(m > 0, upper, 1.0)
