"""`no_regressions_on` with a non-inferiority margin, for the fixed-n gate (`gate --no-regressions-margin`).

As written in the seed, a protected slice "regresses" when its paired success@1 is lower than the
baseline's at all, a point comparison: at 20-odd cases per slice a release that is truly a little
better is blocked by noise in about a third of gates (benchmarks/policy_errors.py). With a margin
m, each protected slice needs a paired confidence interval for Δ = candidate − baseline:

- **fail** when some slice's upper bound is < 0: a regression, of any size, is shown (the seed's
  "no regressions allowed");
- **pass** when every slice's lower bound is ≥ −m: no regression beyond the margin (non-inferiority);
- **inconclusive** otherwise (hold).

A release truly worse than −m on a protected slice then passes with probability ≤ α/2 (one end
of the two-sided interval at the policy's level), which the point comparison cannot promise, and
one truly no worse is blocked with probability ≤ α/2; the price is a hold where the data cannot
tell. The interval is Newcombe's hybrid
score interval for a paired difference of proportions (Newcombe 1998, "Improved confidence
intervals for the difference between binomial proportions based on paired data", Statist. Med.
17(22), method 10), built from the gate's Wilson intervals. The sequential gate uses the same
decision with anytime-valid intervals (`gate.sequential`).
"""

from __future__ import annotations

import math

import numpy as np

from releasectl.gate.metrics import GateResolver
from releasectl.gate.rules import MetricRef, NoRegressions
from releasectl.gate.sequential import Box, RuleDecision, no_regressions_decision
from releasectl.gate.stats import wilson_interval


def newcombe_paired_interval(
    both: int, cand_only: int, base_only: int, neither: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Two-sided interval for Δ = P(candidate passes) − P(baseline passes) from the paired 2×2 table:
    `cand_only` = candidate passes and baseline fails, `base_only` the reverse."""
    n = both + cand_only + base_only + neither
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (both + cand_only) / n, (both + base_only) / n
    l1, u1 = wilson_interval(both + cand_only, n, confidence)
    l2, u2 = wilson_interval(both + base_only, n, confidence)
    denom = (both + cand_only) * (base_only + neither) * (both + base_only) * (cand_only + neither)
    phi = (both * neither - cand_only * base_only) / math.sqrt(denom) if denom > 0 else 0.0
    delta = p1 - p2
    lower = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = delta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, lower), min(1.0, upper)


def paired_case_interval(
    cand: np.ndarray, base: np.ndarray, confidence: float = 0.95, *, samples: int
) -> tuple[float, float]:
    """Two-sided interval for Δ = mean over cases of (candidate − baseline) success fraction, with
    several samples per case: the case is the unit (issue 13). The per-case differences d ∈ [−1, 1]
    are mapped to u = (d + 1) / 2 ∈ [0, 1] and given the cluster Wilson interval of the gate's
    sampled rates (`stats.cluster.cluster_interval`: Wilson at the effective number of cases,
    Student-t quantile, capped at the samples behind them), then mapped back: Δ = 2u − 1."""
    from releasectl.stats.cluster import cluster_interval

    d = np.asarray(cand, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    if d.size == 0:
        return -1.0, 1.0
    lo, hi = cluster_interval((d + 1.0) / 2.0, confidence, max_effective=float(d.size * max(1, samples)))
    return max(-1.0, 2.0 * lo - 1.0), min(1.0, 2.0 * hi - 1.0)


def no_regressions_with_margin(rule: NoRegressions, resolver: GateResolver, margin: float) -> RuleDecision:
    """The fixed-n gate's reading of `no_regressions_on` with a margin (module docstring). With
    several samples per case (either run) each slice's interval is `paired_case_interval` on the
    per-case success fractions, and `n` counts cases: pairing samples as if independent would
    promote on the noise of a handful of flipped cases."""
    from releasectl.gate.metrics import clustered

    if clustered(resolver.cand, resolver.base):
        return _with_margin_by_case(rule, resolver, margin)
    boxes: dict[str, Box] = {}
    for s in rule.slices:
        pair = resolver.paired(MetricRef(None, "success@1", (s,)))
        if isinstance(pair, str):
            boxes[s] = Box(-math.inf, math.inf, math.nan, "cs", None, pair)
            continue
        c, b = pair
        n = int(c.size)
        minimum = resolver.policy.min_cases_per_slice
        if n < max(1, minimum):
            why = "no paired cases" if n == 0 else f"{n} cases < policy minimum {minimum} per slice"
            boxes[s] = Box(-math.inf, math.inf, math.nan, "cs", n, why)
            continue
        table = (int(np.sum(c & b)), int(np.sum(c & ~b)), int(np.sum(~c & b)), int(np.sum(~c & ~b)))
        lower, upper = newcombe_paired_interval(*table, confidence=resolver.policy.confidence_level)
        boxes[s] = Box(lower, upper, float(np.mean(c) - np.mean(b)), "cs", n)
    return no_regressions_decision(rule, boxes, margin, "Newcombe paired interval")


def _too_few(n: int, resolver: GateResolver) -> str | None:
    minimum = resolver.policy.min_cases_per_slice
    if n < max(1, minimum):
        return "no paired cases" if n == 0 else f"{n} cases < policy minimum {minimum} per slice"
    return None


def _with_margin_by_case(rule: NoRegressions, resolver: GateResolver, margin: float) -> RuleDecision:
    samples = min(
        resolver.cand.samples_per_case,
        resolver.base.samples_per_case if resolver.base is not None else resolver.cand.samples_per_case,
    )
    boxes: dict[str, Box] = {}
    for s in rule.slices:
        if resolver.base is None:
            boxes[s] = Box(-math.inf, math.inf, math.nan, "cs", None, "no baseline run")
            continue
        got = resolver.paired_cases(MetricRef(None, "success@1", (s,)))
        if isinstance(got, str):
            boxes[s] = Box(-math.inf, math.inf, math.nan, "cs", None, got)
            continue
        c, b, _ = got
        n = int(c.size)
        why = _too_few(n, resolver)
        if why is not None:
            boxes[s] = Box(-math.inf, math.inf, math.nan, "cs", n, why)
            continue
        lower, upper = paired_case_interval(c, b, resolver.policy.confidence_level, samples=samples)
        boxes[s] = Box(lower, upper, float(np.mean(c - b)), "cs", n)
    return no_regressions_decision(
        rule,
        boxes,
        margin,
        f"case-level paired interval on per-case success fractions, {samples} samples per case",
    )
