"""Repeated looks: a canary checked every hour for 48 hours, fixed-horizon test against anytime-valid.

Seed 004's traffic step gates on "error rate ≤ old + 0.5 %". The canary gets 5 % of traffic. Each
hour the analysis looks at everything so far and blocks the step when the candidate is shown to be
worse than allowed. Three analyses of the same simulated streams:

- fixed-horizon, checked hourly: a one-sided two-proportion z-test of H0 "candidate ≤ old + margin"
  at α every hour (what a scheduled job running a textbook test does);
- fixed-horizon, once at 48 h: the same test, used as designed (a single look);
- anytime-valid: the bounds releasectl.stats.sequential.compare_rates decides on (one-sided
  empirical-Bernstein confidence sequences, α/2 per stream) every hour.

Under the null at the boundary (candidate exactly old + margin: not worse than allowed), every
block is a false alarm; under the regression (2 points worse) we report the detection rate and
the median hour of detection.

    python benchmarks/sequential.py [--sims 1000] [--hours 48] [--per-hour 4000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from releasectl.stats.sequential import mean_cs_path  # noqa: E402

Z_ALPHA = 1.6448536269514722  # one-sided 5 %


def first_block_fixed(
    cand: np.ndarray, base: np.ndarray, looks_c: np.ndarray, looks_b: np.ndarray, margin: float
):
    """Hours (1-based) at which the hourly z-test blocks, or 0; and whether the 48 h test blocks."""
    sc, sb = np.cumsum(cand)[looks_c - 1], np.cumsum(base)[looks_b - 1]
    pc, pb = sc / looks_c, sb / looks_b
    se = np.sqrt(np.maximum(pc * (1 - pc) / looks_c + pb * (1 - pb) / looks_b, 1e-12))
    z = (pc - pb - margin) / se
    hits = np.nonzero(z > Z_ALPHA)[0]
    return (int(hits[0]) + 1 if len(hits) else 0), bool(z[-1] > Z_ALPHA)


def first_block_anytime(cand, base, looks_c, looks_b, margin: float, alpha: float) -> int:
    c_lo, _, _ = mean_cs_path(cand, alpha / 2, two_sided=False)
    _, b_hi, _ = mean_cs_path(base, alpha / 2, two_sided=False)
    blocked = c_lo[looks_c - 1] > b_hi[looks_b - 1] + margin
    hits = np.nonzero(blocked)[0]
    return int(hits[0]) + 1 if len(hits) else 0


def simulate(delta: float, args: argparse.Namespace, rng: np.random.Generator) -> dict[str, float]:
    n_c = int(args.per_hour * args.canary)
    n_b = args.per_hour - n_c
    looks_c = np.arange(1, args.hours + 1) * n_c
    looks_b = np.arange(1, args.hours + 1) * n_b
    fixed_hourly, fixed_once, anytime = [], [], []
    for _ in range(args.sims):
        cand = (rng.random(n_c * args.hours) < args.base_rate + delta).astype(float)
        base = (rng.random(n_b * args.hours) < args.base_rate).astype(float)
        hour, once = first_block_fixed(cand, base, looks_c, looks_b, args.margin)
        fixed_hourly.append(hour)
        fixed_once.append(once)
        anytime.append(first_block_anytime(cand, base, looks_c, looks_b, args.margin, args.alpha))

    def median_hour(hours: list[int]) -> float:
        hit = [h for h in hours if h]
        return float(np.median(hit)) if hit else math.nan

    return {
        "fixed_hourly": float(np.mean([h > 0 for h in fixed_hourly])),
        "fixed_hourly_hour": median_hour(fixed_hourly),
        "fixed_once": float(np.mean(fixed_once)),
        "anytime": float(np.mean([h > 0 for h in anytime])),
        "anytime_hour": median_hour(anytime),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--per-hour", type=int, default=4000, help="requests per hour, all traffic")
    parser.add_argument("--canary", type=float, default=0.05, help="the canary's share of traffic")
    parser.add_argument("--base-rate", type=float, default=0.02, help="the baseline's error rate")
    parser.add_argument("--margin", type=float, default=0.005, help="seed 004: error rate <= old + 0.5 %%")
    parser.add_argument("--regression", type=float, default=0.02, help="a real regression: 2 points worse")
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    rng = np.random.default_rng(20261201)
    t0 = time.perf_counter()
    null = simulate(args.margin, args, rng)
    worse = simulate(args.regression, args, rng)
    print(
        f"{args.sims} simulated canaries, {args.hours} hourly looks, {args.per_hour} requests/h "
        f"({args.canary:.0%} canary), baseline error {args.base_rate:.1%}, margin {args.margin:.1%}, "
        f"α = {args.alpha}  ({time.perf_counter() - t0:.1f} s)"
    )
    print()
    print(
        "| analysis | false alarms (candidate = old + margin) | detected (2 points worse) | median hour of detection |"
    )
    print("|---|---|---|---|")
    print(
        f"| fixed-horizon z-test, checked hourly | {null['fixed_hourly']:.3f} | {worse['fixed_hourly']:.3f} "
        f"| {worse['fixed_hourly_hour']:.0f} |"
    )
    print(
        f"| fixed-horizon z-test, once at {args.hours} h | {null['fixed_once']:.3f} | {worse['fixed_once']:.3f} | {args.hours} |"
    )
    print(
        f"| anytime-valid confidence sequences, hourly | {null['anytime']:.3f} | {worse['anytime']:.3f} "
        f"| {worse['anytime_hour']:.0f} |"
    )
    verdict = "holds" if null["anytime"] <= args.alpha else "EXCEEDS"
    print(
        f"\nanytime-valid false-alarm rate {null['anytime']:.3f} {verdict} α = {args.alpha}; "
        f"the hourly fixed-horizon test's is {null['fixed_hourly']:.3f}"
    )


if __name__ == "__main__":
    main()
