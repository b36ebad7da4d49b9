"""Anytime-valid confidence sequences: they cover the truth at every look at once, and decide."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasectl.stats.sequential import (
    bernoulli_count_range,
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


@pytest.mark.parametrize("p", [0.05, 0.5, 0.95])
def test_the_bernoulli_count_range_holds_the_count_at_every_look(p):
    rng = np.random.default_rng(17)
    misses = 0
    for _ in range(200):
        counts = np.cumsum(rng.random(1000) < p)
        misses += any(
            not lo <= counts[n - 1] <= hi
            for n in range(25, 1001, 25)
            for lo, hi in [bernoulli_count_range(n, p, 0.05)]
        )
    assert misses / 200 <= 0.05
    lo, hi = bernoulli_count_range(600, 0.95, 0.05)
    assert lo <= 570 <= hi < 600  # a p95 has a finite upper bound at 600 observations


# --- the paired always-valid test and the delta CS (issue 13 §2) ------------------------------


def _first_rejections(rng, sims, pairs, pi, side, discordance=0.3):
    """Share of simulated paired streams whose always-valid p-value ever reaches α = 0.05 when
    looked at after every pair (optional stopping at its most aggressive)."""
    from releasectl.stats.sequential import discordant_e_path

    rejected = 0
    for _ in range(sims):
        discordant = rng.random(pairs) < discordance
        wins = rng.random(int(discordant.sum())) < pi
        rejected += bool(np.any(discordant_e_path(wins, side=side) >= 1 / 0.05))
    return rejected / sims


def test_the_paired_sign_test_keeps_type_one_error_under_optional_stopping():
    rng = np.random.default_rng(21)
    # McNemar's null (π = ½), checked after every one of 2,000 pairs: stopping at the first
    # p ≤ 0.05 rejects in at most α of streams (a fixed-n test checked this often: far more).
    assert _first_rejections(rng, 1000, 2000, 0.5, "two-sided") <= 0.05
    # The composite one-sided null "the candidate is no better" (π ≤ ½), at π = ½ and below it.
    assert _first_rejections(rng, 1000, 2000, 0.5, "greater") <= 0.05
    assert _first_rejections(rng, 500, 2000, 0.4, "greater") <= 0.01


def test_a_repeatedly_checked_fixed_n_mcnemar_exceeds_alpha_where_the_e_process_does_not():
    from releasectl.gate.stats import mcnemar_exact

    rng = np.random.default_rng(4)
    naive = 0
    for _ in range(300):
        wins = rng.random(400) < 0.5
        k = np.cumsum(wins)
        naive += any(mcnemar_exact(int(m - k[m - 1]), int(k[m - 1])) < 0.05 for m in range(10, 401, 10))
    assert naive / 300 > 0.1  # 40 looks at a fixed-n test: well above α


def test_the_e_process_equals_its_mixture_integral_and_finds_a_real_difference():
    from scipy.integrate import quad

    from releasectl.stats.sequential import discordant_e_path, paired_sign_test

    wins = [True, True, False, True, True, True, False, True]
    k, m = sum(wins), len(wins)
    for side, (lo, hi) in (("two-sided", (0, 1)), ("greater", (0.5, 1)), ("less", (0, 0.5))):
        mass = quad(lambda p: 1.0, lo, hi)[0]
        integral = quad(lambda p: p**k * (1 - p) ** (m - k) / 0.5**m, lo, hi)[0] / mass
        assert discordant_e_path(wins, side=side)[-1] == pytest.approx(integral, rel=1e-9)
    rng = np.random.default_rng(9)
    base = rng.random(600) < 0.5
    better = np.where(rng.random(600) < 0.25, True, base)  # 25 % of cases fixed, none broken
    test = paired_sign_test(better, base)
    assert test.p_value < 1e-6 and test.candidate_better == test.discordant
    assert paired_sign_test(base, base).p_value == 1.0


def test_the_paired_delta_cs_covers_the_truth_at_every_look():
    from releasectl.stats.sequential import paired_delta_cs, paired_delta_path

    rng = np.random.default_rng(13)
    u = rng.random((300, 1000))
    base = u < 0.70
    cand = np.where(rng.random((300, 1000)) < 0.8, u, rng.random((300, 1000))) < 0.67  # Δ = −0.03
    lower, upper, _ = paired_delta_path(cand, base, 0.05)  # 300 streams at once
    misses = np.any((lower > -0.03) | (upper < -0.03), axis=1)
    assert misses.mean() <= 0.05  # the truth leaves the CS at ANY of 1,000 looks in ≤ α of streams
    iv = paired_delta_cs(cand[0], base[0], 0.05)
    assert -1 <= iv.lower <= iv.estimate <= iv.upper <= 1 and iv.n == 1000
    assert (iv.lower, iv.upper) == (lower[0, -1], upper[0, -1])


@pytest.mark.parametrize("p", [0.02, 0.5, 0.97])
def test_the_bernoulli_cs_covers_the_rate_at_every_look(p):
    from releasectl.stats.sequential import bernoulli_cs, bernoulli_log_mixture

    rng = np.random.default_rng(23)
    n = np.arange(1, 3001)
    misses = sum(
        bool(np.any(bernoulli_log_mixture(np.cumsum(rng.random(3000) < p), n, p) >= np.log(20)))
        for _ in range(400)
    )
    assert misses / 400 <= 0.05  # the truth leaves the CS at ANY of 3,000 looks in ≤ α of streams
    iv = bernoulli_cs(92, 100, 0.05)
    assert 0.79 < iv.lower < 0.81 and 0.97 < iv.upper < 0.99  # tight at both ends


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(1, 400), st.floats(0.001, 0.5))
def test_bernoulli_cs_bounds_are_ordered_and_contain_the_estimate(k, n, alpha):
    from releasectl.stats.sequential import bernoulli_cs

    iv = bernoulli_cs(min(k, n), n, alpha)
    assert 0.0 <= iv.lower <= iv.estimate <= iv.upper <= 1.0


# --- one-sided sequences tuned to the rule (the gate's pass and fail sides) -------------------


@pytest.mark.parametrize(("p", "threshold"), [(0.99, 0.99), (0.05, 0.05), (0.97, 0.99), (0.6, 0.5)])
def test_each_side_of_the_threshold_tuned_rate_cs_holds_the_truth_at_every_look(p, threshold):
    from releasectl.stats.sequential import bernoulli_side_log_mixture

    rng = np.random.default_rng(31)
    k = np.cumsum(rng.random((400, 3000)) < p, axis=1)
    n = np.arange(1, 3001)
    p_hat = k / n
    bound = np.log(1 / 0.05)
    # The lower end is above the truth iff the mixture on [threshold, 1] rejects p from above p̂'s
    # side (and likewise the upper end): a miss at ANY of 3,000 looks, in ≤ α of 400 streams.
    above = (bernoulli_side_log_mixture(k, n, p, (threshold, 1.0)) >= bound) & (p_hat > p)
    below = (bernoulli_side_log_mixture(k, n, p, (0.0, threshold)) >= bound) & (p_hat < p)
    assert above.any(axis=1).mean() <= 0.05
    assert below.any(axis=1).mean() <= 0.05


def test_the_threshold_tuned_cs_decides_where_the_two_sided_one_cannot():
    from releasectl.stats.sequential import bernoulli_cs_bounds, bernoulli_side_bounds

    # 500 of 500 tool calls valid: "schema rate ≥ 0.99" is shown at α/2 = 0.025 by the mixture on
    # [0.99, 1]; the two-sided Jeffreys mixture at α = 0.05 needs ~680 cases for the same claim.
    lower, upper = bernoulli_side_bounds(500, 500, 0.025, 0.99)
    assert lower >= 0.99 and upper == 1.0
    assert bernoulli_cs_bounds(500, 500, 0.05)[0] < 0.99
    _, upper = bernoulli_side_bounds(np.asarray([6, 8]), 400, 0.025, 0.05)
    assert upper[0] <= 0.05 < upper[1]  # 6/400 violations show "≤ 5 %"; 8/400 do not yet


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(1, 400), st.floats(0.001, 0.5), st.floats(0.0, 1.0))
def test_threshold_bounds_are_ordered_and_contain_the_estimate(k, n, alpha, threshold):
    from releasectl.stats.sequential import bernoulli_side_bounds

    k = min(k, n)
    lower, upper = bernoulli_side_bounds(k, n, alpha, threshold)
    assert 0.0 <= lower <= k / n + 1e-9 and k / n - 1e-9 <= upper <= 1.0


@pytest.mark.parametrize("delta", [-0.02, 0.0, 0.07])
def test_the_paired_betting_cs_holds_the_truth_at_every_look(delta):
    from releasectl.stats.sequential import bet_fractions, paired_log_e

    rng = np.random.default_rng(37)
    # paired outcomes with 14 % discordant pairs and true Δ = delta, 300 streams, 1,000 looks
    q_win = (0.14 + delta) / 2
    u = rng.random((300, 1000))
    wins, losses = np.cumsum(u < q_win, axis=1), np.cumsum((u >= q_win) & (u < 0.14), axis=1)
    n = np.arange(1, 1001)
    bound = np.log(1 / 0.05)
    for horizon in (None, 1000):
        c = bet_fractions(horizon)
        # E is monotone in δ0, so the lower end passes the truth exactly when E at the truth crosses
        too_high = (paired_log_e(wins, losses, n, delta, "greater", c) >= bound).any(axis=1)
        too_low = (paired_log_e(wins, losses, n, delta, "less", c) >= bound).any(axis=1)
        assert too_high.mean() <= 0.05 and too_low.mean() <= 0.05


def test_the_paired_bounds_are_the_e_process_inverted_and_tighter_than_the_marginal_union():
    from releasectl.stats.sequential import bet_fractions, paired_delta_path, paired_log_e, paired_side_bounds

    lower, upper = paired_side_bounds(150, 90, 1000, 0.025, horizon=1200)
    c = bet_fractions(1200)
    bound = np.log(40)
    assert paired_log_e(150, 90, 1000, lower - 1e-6, "greater", c) >= bound - 1e-6
    assert paired_log_e(150, 90, 1000, lower + 1e-3, "greater", c) < bound
    assert paired_log_e(150, 90, 1000, upper + 1e-6, "less", c) >= bound - 1e-6
    assert lower < 0.06 < upper
    rng = np.random.default_rng(5)
    d = rng.permutation(np.r_[np.ones(150), -np.ones(90), np.zeros(760)])
    old_lo, old_hi, _ = paired_delta_path((d == 1).astype(float), (d == -1).astype(float), 0.05)
    assert upper - lower < 0.9 * (old_hi[-1] - old_lo[-1])  # one-sided at α/2 each, and still narrower
    assert paired_side_bounds(0, 0, 0, 0.05) == (-1.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300), st.integers(1, 600), st.floats(0.001, 0.5))
def test_paired_bounds_are_ordered_and_contain_the_estimate(w, lo, n, alpha):
    from releasectl.stats.sequential import paired_side_bounds

    w, lo = min(w, n), min(lo, n - min(w, n))
    lower, upper = paired_side_bounds(w, lo, n, alpha)
    assert -1.0 <= lower <= (w - lo) / n + 1e-9 and (w - lo) / n - 1e-9 <= upper <= 1.0
