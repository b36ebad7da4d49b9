"""Trend statistics for monitor's reward-collapse check: Kendall's τ-b with its two-sided p-value,
and the least-squares slope.

The same numbers as `scipy.stats.kendalltau` (variant b, method "auto") and `linregress(...).slope`
(tests/test_trend.py checks both on random series with and without ties), computed with numpy
and `math` alone: importing `scipy.stats` costs 1-1.5 s here, more than monitor's DuckDB pass over
a gigabyte, and `monitor` is an incident tool.

- τ-b = (C − D) / √((T − Tx)(T − Ty)), with T = n(n−1)/2 pairs, Tx and Ty the pairs tied in x
  or in y, and C − D = T − Tx − Ty + Txy − 2D (Txy tied in both).
- p-value: exact when neither series has ties and n ≤ 33 (or min(D, T−D) ≤ 1), from the number of
  permutations of n with at most c inversions (c = min(C, T−C)); otherwise the normal
  approximation with the tie-corrected variance (Kendall 1945; the formulas scipy uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _dense_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing one rank (the order of `a`'s distinct values)."""
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=np.int64)
    ranks[order] = np.r_[True, a[order][1:] != a[order][:-1]].cumsum()
    return ranks


def _tie_sums(ranks: np.ndarray) -> tuple[int, float, float]:
    cnt = np.bincount(ranks)
    cnt = cnt[cnt > 1].astype(np.int64)
    return (
        int((cnt * (cnt - 1) // 2).sum()),
        float((cnt * (cnt - 1.0) * (cnt - 2)).sum()),
        float((cnt * (cnt - 1.0) * (2 * cnt + 5)).sum()),
    )


def _discordant(x: np.ndarray, y: np.ndarray) -> int:
    """Pairs i < j with (x_i − x_j)(y_i − y_j) < 0, for the short series monitor has (O(n²))."""
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    return int(np.triu(dx * dy < 0, k=1).sum())


def _exact_p(n: int, concordant: int) -> float:
    """Two-sided P(|S| ≥ observed) under independence, no ties: 2·#{perms with ≤ c inversions}/n!."""
    total = n * (n - 1) // 2
    c = min(concordant, total - concordant)
    if n <= 2:
        return 1.0
    if c == 0:
        return 2.0 / math.factorial(n) if n < 171 else 0.0
    if c == 1:
        return 2.0 / math.factorial(n - 1) if n < 172 else 0.0
    if 4 * c == n * (n - 1):
        return 1.0
    # counts[k] = permutations of j elements with exactly k inversions, k ≤ c
    counts = [0] * (c + 1)
    counts[0] = counts[1] = 1  # j = 2
    for j in range(3, n + 1):
        running, acc = [0] * (c + 1), 0
        for k in range(c + 1):
            acc += counts[k]
            if k >= j:
                acc -= counts[k - j]
            running[k] = acc
        counts = running
    return min(1.0, 2.0 * sum(counts) / math.factorial(n))


def kendall_tau(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(τ-b, two-sided p-value); (nan, nan) when either series is constant or shorter than 2."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(xa)
    if n < 2 or len(ya) != n:
        return math.nan, math.nan
    rx, ry = _dense_ranks(xa), _dense_ranks(ya)
    total = n * (n - 1) // 2
    xtie, x0, x1 = _tie_sums(rx)
    ytie, y0, y1 = _tie_sums(ry)
    if xtie == total or ytie == total:
        return math.nan, math.nan
    pairs = np.stack([rx, ry], axis=1)
    _, joint = np.unique(pairs, axis=0, return_counts=True)
    ntie = int((joint * (joint - 1) // 2).sum())
    dis = _discordant(rx, ry)
    con_minus_dis = total - xtie - ytie + ntie - 2 * dis
    tau = min(1.0, max(-1.0, con_minus_dis / math.sqrt(total - xtie) / math.sqrt(total - ytie)))
    if xtie == 0 and ytie == 0 and (n <= 33 or min(dis, total - dis) <= 1):
        return tau, _exact_p(n, total - dis)
    m = n * (n - 1.0)
    var = (m * (2 * n + 5) - x1 - y1) / 18 + (2 * xtie * ytie) / m + x0 * y0 / (9 * m * (n - 2))
    z = con_minus_dis / math.sqrt(var)
    return tau, math.erfc(abs(z) / math.sqrt(2))


def ols_slope(y: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of `y` against 0, 1, 2, …; nan for fewer than two points."""
    ya = np.asarray(y, dtype=np.float64)
    if len(ya) < 2:
        return math.nan
    x = np.arange(len(ya), dtype=np.float64)
    xm = x - x.mean()
    return float((xm * (ya - ya.mean())).sum() / (xm * xm).sum())
