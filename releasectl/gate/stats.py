"""Statistics for the gate: Wilson intervals, exact McNemar, multiplicity.

The closed forms below equal scipy.stats' `binomtest(...).proportion_ci(method="wilson")` and
`binomtest(k, n, 0.5).pvalue` (tests/test_gate.py checks them against scipy); they avoid
importing scipy.stats (over a second on a busy machine) on every gate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import NormalDist


@lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar p-value on the discordant pairs: b = baseline pass & candidate fail,
    c = baseline fail & candidate pass. No discordant pairs means no evidence of a difference.

    The two-sided exact binomial test at p = 0.5 is symmetric: 2 × P(X ≤ min(b, c)), capped at 1."""
    if b + c == 0:
        return 1.0
    from scipy.special import bdtr

    return float(min(1.0, 2.0 * bdtr(min(b, c), b + c, 0.5)))


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Holm (family-wise) or Benjamini-Hochberg (false discovery rate) adjusted p-values."""
    ps = [float(p) for p in p_values]
    if method == "none" or len(ps) <= 1:
        return ps
    if method == "bh":
        from scipy.stats import false_discovery_control

        return [float(x) for x in false_discovery_control(ps, method="bh")]
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    m = len(ps)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return adjusted
