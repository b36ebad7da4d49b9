"""Anytime-valid confidence sequences: they cover the truth at every look at once, and decide."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasectl.stats.sequential import (
    bernoulli_variance_proxy,
    compare_quantiles,
    compare_rates,
    mean_cs,
    mean_cs_path,
    quantile_cs,
)


def test_the_mean_cs_covers_the_truth_at_every_look_simultaneously():
    rng = np.random.default_rng(7)
    misses = 0
    for _ in range(400):
        x = (rng.random(3000) < 0.08).astype(float)
        lower, upper, _ = mean_cs_path(x, 0.05)
        misses += bool(np.any((lower > 0.08) | (upper < 0.08)))  # a miss at ANY of 3,000 looks
    assert misses / 400 <= 0.05


def test_the_quantile_cs_covers_the_p95_at_every_look():
    rng = np.random.default_rng(11)
    truth = float(np.exp(6 + 0.5 * 1.6448536269514722))  # p95 of lognormal(6, 0.5)
    misses = 0
    for _ in range(200):
        y = rng.lognormal(6, 0.5, 2000)
        misses += any(
            not (iv.lower <= truth <= iv.upper)
            for iv in (quantile_cs(y[:n], 0.95, 0.05) for n in range(100, 2001, 100))
        )
    assert misses / 200 <= 0.05


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=300), st.floats(0.001, 0.5))
def test_bounds_are_ordered_and_inside_the_unit_interval(xs, alpha):
    iv = mean_cs(xs, alpha)
    assert 0.0 <= iv.lower <= iv.upper <= 1.0


def test_a_regression_fails_a_clean_candidate_passes_and_too_little_data_holds():
    rng = np.random.default_rng(3)
    base = (rng.random(60_000) < 0.02).astype(float)
    worse = (rng.random(3000) < 0.06).astype(float)
    same = (rng.random(3000) < 0.02).astype(float)
    assert compare_rates(worse, base, margin=0.005, higher_is_better=False).decision == "fail"
    assert compare_rates(same, base, margin=0.02, higher_is_better=False).decision == "pass"
    assert compare_rates(same[:50], base, margin=0.005, higher_is_better=False).decision == "undecided"
    completion = (rng.random(3000) < 0.70).astype(float)
    assert (
        compare_rates(
            completion, (rng.random(60_000) < 0.85).astype(float), margin=0.02, higher_is_better=True
        ).decision
        == "fail"
    )


def test_p95_latency_rule():
    rng = np.random.default_rng(5)
    base = rng.lognormal(6, 0.4, 50_000)
    assert compare_quantiles(rng.lognormal(6.5, 0.4, 5000), base).decision == "fail"  # ~65 % slower
    assert compare_quantiles(rng.lognormal(5.7, 0.4, 5000), base).decision == "pass"
    assert compare_quantiles(rng.lognormal(6, 0.4, 30), base).decision == "undecided"


@pytest.mark.parametrize("p", [0.01, 0.05, 0.3, 0.5, 0.9])
def test_the_bernoulli_variance_proxy_is_at_most_a_quarter(p):
    assert p * (1 - p) <= bernoulli_variance_proxy(p) + 1e-12 <= 0.25 + 1e-12
