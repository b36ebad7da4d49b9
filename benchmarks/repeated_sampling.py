"""Decision quality with repeated sampling: the case, not the sample, is the unit.

Simulated releases with `sampling.n` = k samples per case. Each case has a latent pass probability
(Beta-distributed difficulty), so a case's k samples are correlated. The candidate is **no better
than the baseline in truth**: its per-case probability equals the baseline's with probability rho
and is otherwise a fresh draw from the same distribution, so the two are exchangeable and have the
same mean over cases, but differ case by case (a retrained model wins some cases, loses others).

The gate's rule is `delta.success@1{S}.point > 0` and `delta.success@1{S}.p_value < 0.05`; a
promotion here is a false promotion. Compared:

- **naive z**: a two-proportion z-test on the n·k candidate vs n·k baseline samples, as if
  independent;
- **naive McNemar**: exact McNemar on n·k sample pairs (sample j of the candidate with sample j of
  the baseline), as if the pairs were independent;
- **case level (the gate)**: the sign-flip test on per-case success-fraction differences,
  `releasectl.stats.cluster.sign_flip_pvalue`, the function the gate uses (exact McNemar at k = 1).

The last two columns give the coverage of the 95 % interval for the candidate's success@1 (truth:
the mean over the case distribution): Wilson on n·k samples as if independent, vs the gate's
interval (Wilson at k = 1, the cluster interval `cluster_interval` for k > 1).

    python benchmarks/repeated_sampling.py [--releases 5000] [--seed 13]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasectl.gate.stats import mcnemar_exact, wilson_interval  # noqa: E402
from releasectl.stats.cluster import cluster_interval, sign_flip_pvalue  # noqa: E402

ALPHA = 0.05
MEAN, CONCENTRATION = 0.6, 2.0  # Beta(1.2, 0.8): case difficulty spread over the whole range


def simulate(rng: np.random.Generator, releases: int, cases: int, k: int, rho: float) -> dict[str, float]:
    """False-promotion rate of each test, and interval coverage, over `releases` null releases."""
    from scipy.special import ndtr

    a, b = MEAN * CONCENTRATION, (1 - MEAN) * CONCENTRATION
    p_base = rng.beta(a, b, size=(releases, cases))
    fresh = rng.beta(a, b, size=(releases, cases))
    p_cand = np.where(rng.random((releases, cases)) < rho, p_base, fresh)
    base = rng.random((releases, cases, k)) < p_base[..., None]
    cand = rng.random((releases, cases, k)) < p_cand[..., None]
    samples = cases * k
    p1, p2 = cand.mean(axis=(1, 2)), base.mean(axis=(1, 2))
    ahead = p1 > p2
    pooled = (p1 + p2) / 2
    se = np.sqrt(np.maximum(2 * pooled * (1 - pooled) / samples, 1e-300))
    naive_z = ahead & (2 * ndtr(-np.abs(p1 - p2) / se) < ALPHA)
    disc_b = np.sum(base & ~cand, axis=(1, 2))
    disc_c = np.sum(~base & cand, axis=(1, 2))
    naive_mcnemar = ahead & np.array(
        [mcnemar_exact(int(x), int(y)) < ALPHA for x, y in zip(disc_b, disc_c, strict=True)]
    )
    d = cand.mean(axis=2) - base.mean(axis=2)
    ours = ahead & np.array([sign_flip_pvalue(row, lattice=k) < ALPHA for row in d])
    truth = MEAN
    passes = cand.sum(axis=(1, 2))
    naive_cover = np.mean(
        [lo <= truth <= hi for lo, hi in (wilson_interval(int(x), samples) for x in passes)]
    )
    fractions = cand.mean(axis=2)
    ours_cover = (
        naive_cover  # one sample per case: the gate keeps the exact Wilson interval
        if k == 1
        else np.mean(
            [
                lo <= truth <= hi
                for lo, hi in (cluster_interval(row, 0.95, max_effective=samples) for row in fractions)
            ]
        )
    )
    return {
        "naive_z": float(naive_z.mean()),
        "naive_mcnemar": float(naive_mcnemar.mean()),
        "ours": float(ours.mean()),
        "naive_cover": float(naive_cover),
        "ours_cover": float(ours_cover),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=5000, help="simulated null releases per row")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    print(
        f"{args.releases} null releases per row (candidate no better in truth); case difficulty "
        f"Beta({MEAN * CONCENTRATION:g}, {(1 - MEAN) * CONCENTRATION:g}); alpha {ALPHA}; seed {args.seed}"
    )
    print("promote = point > 0 and two-sided p < alpha, so a valid test promotes <= alpha/2 of the time")
    header = (
        f"{'cases':>5} {'k':>3} {'rho':>4} | {'naive z':>8} {'naive McNemar':>14} {'case level':>11} |"
        f" {'Wilson n*k cover':>17} {'gate cover':>11}"
    )
    print(header)
    print("-" * len(header))
    for cases in (50, 200):
        for rho in (0.0, 0.7):
            for k in (1, 3, 5, 10):
                r = simulate(rng, args.releases, cases, k, rho)
                flag = "" if r["ours"] <= ALPHA else " ABOVE ALPHA"
                print(
                    f"{cases:>5} {k:>3} {rho:>4} | {r['naive_z']:>8.3f} {r['naive_mcnemar']:>14.3f}"
                    f" {r['ours']:>11.3f}{flag} | {r['naive_cover']:>17.3f} {r['ours_cover']:>11.3f}"
                )
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
