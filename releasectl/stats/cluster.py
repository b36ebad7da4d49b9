"""Statistics for repeated sampling: the case is the unit, its samples are a cluster.

With `sampling.n` samples per case, the samples of one case share the case's difficulty, so they
are correlated; treating n·k samples as independent understates every standard error
(docs/repeated_sampling.md, benchmarks/repeated_sampling.py). Everything here works on one value
per case instead:

- **estimators** per case: the success fraction c/n, and the unbiased `pass@k` and `pass^k` of
  Chen et al. (2021), "Evaluating Large Language Models Trained on Code", arXiv:2107.03374, §2.1;
- **intervals** for the mean of per-case values: the Wilson score interval at the effective
  sample size n_eff = p̂(1 − p̂) / Var̂(p̂), with Var̂ the between-case (cluster-robust) variance
  of the mean and a Student-t quantile on m − 1 degrees of freedom (Kish 1965 design effect;
  Korn & Graubard 1998, Survey Methodology 24(2); Miller 2024, "Adding Error Bars to Evals",
  arXiv:2411.00640, §2.2 clustered standard errors). With one sample per case the gate keeps the
  exact Wilson interval (`releasectl.gate.stats`);
- **paired tests** on per-case differences: the two-sided sign-flip (randomisation) test of the
  mean difference (Fisher 1935, The Design of Experiments, §21). With one sample per case it *is*
  the exact McNemar test; on a lattice (success fractions) it is computed exactly, otherwise by
  Monte Carlo with a fixed seed and the +1 correction of Phipson & Smyth (2010), SAGMB 9(1).

Pure numpy and scipy.special: no I/O, no scipy.stats import (seconds on a busy machine).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

SIGN_FLIP_SEED = 20211  # fixed: the same data always give the same Monte Carlo p-value
SIGN_FLIP_RESAMPLES = 20_000
_EXACT_MAX_SUPPORT = 4_000_000  # lattice points of the exact sign-flip distribution (FFT length)
_MONTE_CARLO_MAX_WORK = 200_000_000  # cases × resamples; beyond, the normal limit is exact enough
_DIRECT_CONVOLVE_MAX = 4_000


# --- per-case estimators ---------------------------------------------------------------------


def _counts(n: np.ndarray | int, c: np.ndarray | int, k: int) -> tuple[np.ndarray, np.ndarray]:
    n_arr = np.asarray(n, dtype=np.int64)
    c_arr = np.asarray(c, dtype=np.int64)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError("each case needs 0 <= c <= n")
    if np.any(n_arr < k):
        raise ValueError(f"k={k} exceeds the samples of a case (n={int(np.min(n_arr))}); need n >= k")
    return np.broadcast_arrays(n_arr, c_arr)  # type: ignore[return-value]


def pass_at_k(n: np.ndarray | int, c: np.ndarray | int, k: int) -> np.ndarray:
    """Unbiased pass@k per case: 1 − C(n−c, k) / C(n, k), the chance that k of the case's n
    samples drawn without replacement include a pass (Chen et al. 2021, eq. 1). Needs n ≥ k.

    Computed as the product ∏_{j<k} (n−c−j)/(n−j), which never forms a binomial coefficient."""
    n_arr, c_arr = _counts(n, c, k)
    j = np.arange(k, dtype=np.float64)
    fail = np.clip((n_arr - c_arr)[..., None] - j, 0.0, None) / (n_arr[..., None] - j)
    return 1.0 - np.prod(fail, axis=-1)


def pass_hat_k(n: np.ndarray | int, c: np.ndarray | int, k: int) -> np.ndarray:
    """Unbiased pass^k per case: C(c, k) / C(n, k), the chance that k samples drawn without
    replacement all pass (the all-k-succeed reliability of τ-bench, Yao et al. 2024). Needs n ≥ k."""
    n_arr, c_arr = _counts(n, c, k)
    j = np.arange(k, dtype=np.float64)
    ok = np.clip(c_arr[..., None] - j, 0.0, None) / (n_arr[..., None] - j)
    return np.prod(ok, axis=-1)


# --- intervals -------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _t_quantile(confidence: float, df: int) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, 1 - (1 - confidence) / 2))


def effective_size(values: np.ndarray, max_effective: float | None = None) -> float:
    """n_eff = p̂(1 − p̂) / Var̂(p̂) for per-case values in [0, 1], between m − 1 and `max_effective`
    (the samples behind them: they are never worth more than independent draws).

    When the values carry no variance, or p̂ is 0 or 1, the data cannot show how correlated a
    case's samples are, and n_eff is the number of cases: the conservative choice."""
    v = np.asarray(values, dtype=np.float64)
    m = int(v.size)
    if m < 2:
        return float(m)
    p = float(np.mean(v))
    var = float(np.var(v, ddof=1)) / m
    if p <= 0.0 or p >= 1.0:
        return float(m)
    if var <= 0.0:  # every case has the same fraction: as informative as the samples allow
        return float(max_effective or m)
    n_eff = p * (1.0 - p) / var
    if max_effective is not None:
        n_eff = min(n_eff, float(max_effective))
    return max(n_eff, 1.0)


def cluster_interval(
    values: np.ndarray, confidence: float = 0.95, *, max_effective: float | None = None
) -> tuple[float, float]:
    """Two-sided interval for the mean of per-case values in [0, 1]: the Wilson score interval at
    the effective sample size, with a Student-t quantile on (cases − 1) degrees of freedom.

    `max_effective` caps n_eff (pass the number of samples behind the values)."""
    v = np.asarray(values, dtype=np.float64)
    m = int(v.size)
    if m == 0:
        return (0.0, 1.0)
    if m == 1:
        return (0.0, 1.0)  # one case: nothing is known about the spread between cases
    p = float(np.mean(v))
    n_eff = effective_size(v, max_effective)
    z = _t_quantile(confidence, m - 1)
    z2 = z * z
    centre = (p * n_eff + z2 / 2) / (n_eff + z2)
    half = z / (n_eff + z2) * math.sqrt(max(0.0, p * (1 - p) * n_eff) + z2 / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


# --- paired test -----------------------------------------------------------------------------


def sign_flip_pvalue(
    differences: np.ndarray,
    *,
    lattice: int | None = None,
    resamples: int = SIGN_FLIP_RESAMPLES,
    seed: int = SIGN_FLIP_SEED,
) -> float:
    """Two-sided p-value of the sign-flip test that the per-case differences have mean 0.

    Under the null the candidate and baseline labels of a case are exchangeable, so each
    difference is equally likely to have either sign; the p-value is P(|Σ ε_i d_i| ≥ |Σ d_i|)
    over random signs ε. `lattice` L says every difference is a multiple of 1/L (success
    fractions of n_c and n_b samples: L = lcm(n_c, n_b)); the distribution is then computed
    exactly. Otherwise it is estimated from `resamples` sign vectors drawn with `seed`, with
    p = (1 + hits) / (1 + resamples), which is a valid p-value; for very large suites the
    normal limit of the same distribution (variance Σ d_i², exact) is used."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0.0]
    if d.size == 0:
        return 1.0
    if lattice is not None:
        scaled = np.abs(d) * lattice
        ints = np.rint(scaled)
        if np.allclose(scaled, ints, atol=1e-6) and float(ints.sum()) <= _EXACT_MAX_SUPPORT:
            observed = int(np.rint(float(np.sum(d)) * lattice))
            return _exact_sign_flip(ints.astype(np.int64), observed)
    observed_sum = abs(float(np.sum(d)))
    if d.size * resamples > _MONTE_CARLO_MAX_WORK:
        from scipy.special import ndtr

        z = observed_sum / math.sqrt(float(np.sum(d * d)))
        return float(min(1.0, 2.0 * ndtr(-z)))
    rng = np.random.default_rng(seed)
    magnitudes = np.abs(d)
    tolerance = 1e-9 * max(1.0, observed_sum)
    hits = 0
    chunk = max(1, min(resamples, 4_000_000 // d.size))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        signs = rng.integers(0, 2, size=(size, d.size), dtype=np.int8) * 2 - 1
        sums = np.abs(signs @ magnitudes)
        hits += int(np.sum(sums >= observed_sum - tolerance))
        done += size
    return (1 + hits) / (1 + resamples)


def _exact_sign_flip(magnitudes: np.ndarray, observed: int) -> float:
    """P(|Σ ε_i a_i| ≥ |observed|) for integer magnitudes a_i > 0 and fair random signs.

    With T = Σ a_i [ε_i = +1], the sum is 2T − Σ a_i; T is a sum of independent scaled binomials,
    one per distinct magnitude, whose distribution is their convolution."""
    from scipy.special import gammaln

    total = int(magnitudes.sum())
    values, counts = np.unique(magnitudes, return_counts=True)
    pmf: np.ndarray = np.ones(1)
    parts = []
    for a, m in zip(values.tolist(), counts.tolist(), strict=True):
        x = np.arange(m + 1)
        log_p = gammaln(m + 1) - gammaln(x + 1) - gammaln(m - x + 1) - m * math.log(2.0)
        part = np.zeros(a * m + 1)
        part[:: int(a)] = np.exp(log_p)
        parts.append(part)
    if total + 1 <= _DIRECT_CONVOLVE_MAX:
        for part in parts:
            pmf = np.convolve(pmf, part)
    else:
        size = 1 << total.bit_length()  # >= total + 1: no wrap-around
        spectrum = np.ones(size // 2 + 1, dtype=np.complex128)
        for part in parts:
            spectrum *= np.fft.rfft(part, size)
        pmf = np.clip(np.fft.irfft(spectrum, size)[: total + 1], 0.0, None)
    t = np.arange(total + 1)
    extreme = np.abs(2 * t - total) >= abs(observed)
    return float(min(1.0, np.sum(pmf[extreme])))
