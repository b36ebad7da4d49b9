"""Statistics for the gate, from scipy.stats: Wilson intervals, exact McNemar, multiplicity."""

from __future__ import annotations

from collections.abc import Sequence


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar p-value on the discordant pairs: b = baseline pass & candidate fail,
    c = baseline fail & candidate pass. No discordant pairs means no evidence of a difference."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


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
