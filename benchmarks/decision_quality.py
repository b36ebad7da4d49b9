"""Decision quality of the gate's paired test, by simulation.

10,000 simulated releases at the seed's slice sizes. Each case has a latent difficulty shared
by baseline and candidate (paired outcomes are correlated, as on a frozen suite). The gate's
rule is `delta.success@1{S}.point > 0` and `delta.success@1{S}.p_value < 0.05` (exact McNemar,
`releasectl.gate.stats.mcnemar_exact`, the function the gate uses).

- Null (candidate truly no better): the false-promotion rate must be <= alpha = 0.05.
- Alternative (truly +7 points): power of the paired test vs an unpaired two-proportion z-test
  at the same n.

    python benchmarks/decision_quality.py [--releases 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasectl.gate.stats import mcnemar_exact  # noqa: E402

ALPHA = 0.05


def simulate(
    rng: np.random.Generator, releases: int, n: int, p_base: float, lift: float, rho: float
) -> tuple[float, float]:
    """(paired promote rate, unpaired promote rate)."""
    from scipy.stats import norm

    paired = unpaired = 0
    for _ in range(releases):
        u = rng.random(n)
        fresh = rng.random(n)
        u2 = np.where(rng.random(n) < rho, u, fresh)  # correlated difficulty
        base = u < p_base
        cand = u2 < p_base + lift
        b, c = int(np.sum(base & ~cand)), int(np.sum(~base & cand))
        delta = cand.mean() - base.mean()
        if delta > 0 and mcnemar_exact(b, c) < ALPHA:
            paired += 1
        p1, p2 = cand.mean(), base.mean()
        pooled = (p1 + p2) / 2
        se = np.sqrt(2 * pooled * (1 - pooled) / n)
        z = (p1 - p2) / se if se > 0 else 0.0
        if delta > 0 and 2 * norm.sf(abs(z)) < ALPHA:
            unpaired += 1
    return paired / releases, unpaired / releases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rho", type=float, default=0.7, help="share of cases whose difficulty is shared by both runs"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.releases} simulated releases per row; division_hard baseline 0.41 (seed); rho {args.rho}")
    print(f"{'n':>5} {'false promotion (null)':>24} {'power paired (+7 pt)':>22} {'power unpaired z':>18}")
    for n in (20, 100, 200, 500):
        fp, _ = simulate(rng, args.releases, n, 0.41, 0.0, args.rho)
        power_p, power_u = simulate(rng, args.releases, n, 0.41, 0.07, args.rho)
        flag = "ok" if fp <= ALPHA else "ABOVE ALPHA"
        print(f"{n:>5} {fp:>18.4f} ({flag}) {power_p:>22.4f} {power_u:>18.4f}")


if __name__ == "__main__":
    main()
