"""`stats.trend` gives scipy's numbers: Kendall's τ-b and its p-value (`scipy.stats.kendalltau`,
method "auto": exact without ties up to 33 points, the tie-corrected normal approximation
otherwise) and the least-squares slope (`linregress`). scipy is imported here only to compare."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau, linregress

from releasectl.stats.trend import kendall_tau, ols_slope


def _series(rng: np.random.Generator, n: int, ties: bool, trend: float) -> np.ndarray:
    y = trend * np.arange(n) + rng.normal(size=n)
    return np.round(y) if ties else y


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 12, 20, 33, 34, 50, 120])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("trend", [0.0, 0.15, -0.4, 3.0])
def test_tau_p_and_slope_equal_scipy(n, ties, trend):
    rng = np.random.default_rng(n * 7 + ties + int(trend * 10))
    for _ in range(5):
        y = _series(rng, n, ties, trend)
        ours_tau, ours_p = kendall_tau(range(n), y)
        ref = kendalltau(np.arange(n), y)
        if math.isnan(ref.statistic):
            assert math.isnan(ours_tau) and math.isnan(ours_p)
            continue
        assert ours_tau == pytest.approx(float(ref.statistic), rel=1e-12, abs=1e-12)
        assert ours_p == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-15)
        assert ols_slope(y) == pytest.approx(float(linregress(np.arange(n), y).slope), rel=1e-9, abs=1e-12)


def test_ties_in_both_series_and_degenerate_input():
    x = [1, 1, 2, 2, 3, 3, 3, 4]
    y = [2, 2, 1, 3, 3, 5, 5, 0]
    ref = kendalltau(x, y)
    tau, p = kendall_tau(x, y)
    assert (tau, p) == pytest.approx((float(ref.statistic), float(ref.pvalue)), rel=1e-12)
    assert all(math.isnan(v) for v in kendall_tau([0, 1, 2], [5, 5, 5]))  # constant: no τ
    assert all(math.isnan(v) for v in kendall_tau([0], [1]))
    assert math.isnan(ols_slope([1.0]))


def test_a_perfect_trend_has_the_exact_smallest_p_value():
    tau, p = kendall_tau(range(10), list(range(10)))
    assert tau == pytest.approx(1.0) and p == pytest.approx(2 / math.factorial(10))
