"""Drift against a baseline log and reward collapse over time windows (seed 001 M5-L05).

Thresholds (each reported with its statistic):
- output length, KS: `ks_2samp` on the sampled `tokens_generated`; drift when p < 0.01 and D ≥ 0.1
  (the effect-size floor keeps huge logs from flagging trivial shifts).
- output length, PSI: 10 bins at the baseline's deciles, 1e-4 floor per bin; < 0.1 stable,
  0.1-0.25 moderate (reported), ≥ 0.25 drift.
- input topics, Jensen-Shannon distance (base 2) between `topic` histograms; drift ≥ 0.1.
- input text, TF-IDF cosine distance between baseline and current prompt centroids; drift ≥ 0.2.
- reward collapse: Mann-Kendall-style Kendall τ of per-window means against time; fires when a
  proxy (`reward_score`, `ctr`) rises (τ > 0, p < 0.05) while `user_satisfaction` falls
  (τ < 0, p < 0.05), over at least 4 windows with ≥ 5 satisfaction ratings each.
"""

from __future__ import annotations

from typing import Any

from releasectl.monitoring.stats import PROXY_FIELDS, LogStats

KS_P, KS_D = 0.01, 0.1
PSI_MODERATE, PSI_DRIFT = 0.1, 0.25
JS_DRIFT = 0.1
TFIDF_DRIFT = 0.2
TREND_P = 0.05
MIN_WINDOWS = 4
MIN_PER_WINDOW = 5  # satisfaction ratings a window needs to count (a 1-record window is noise)


def _check(name: str, statistic: float | None, threshold: str, fired: bool, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "statistic": None if statistic is None else round(float(statistic), 6),
        "threshold": threshold,
        "fired": bool(fired),
        **extra,
    }


def psi(expected: list[int], actual: list[int], bins: int = 10) -> float:
    """Population stability index over bins at the baseline's quantiles."""
    import numpy as np

    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    pe = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1) / len(e)
    pa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1) / len(a)
    pe, pa = np.clip(pe, 1e-4, None), np.clip(pa, 1e-4, None)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def detect_drift(current: LogStats, baseline: LogStats) -> list[dict[str, Any]]:
    """Output-length and input-topic drift of `current` against `baseline`."""
    checks: list[dict[str, Any]] = []
    cur, base = current.sample_lengths, baseline.sample_lengths
    if len(cur) >= 20 and len(base) >= 20:
        from scipy.stats import ks_2samp

        ks = ks_2samp(cur, base)
        checks.append(
            _check(
                "output_length_ks",
                ks.statistic,
                f"p < {KS_P} and D >= {KS_D}",
                ks.pvalue < KS_P and ks.statistic >= KS_D,
                p_value=float(ks.pvalue),
            )
        )
        value = psi(base, cur)
        level = "drift" if value >= PSI_DRIFT else "moderate" if value >= PSI_MODERATE else "stable"
        checks.append(
            _check(
                "output_length_psi",
                value,
                f">= {PSI_DRIFT} (0.1-0.25 moderate)",
                value >= PSI_DRIFT,
                level=level,
            )
        )
    else:
        checks.append(
            _check("output_length_ks", None, "needs >= 20 records on each side", False, skipped=True)
        )
    if current.topics and baseline.topics:
        import numpy as np
        from scipy.spatial.distance import jensenshannon

        names = sorted(set(current.topics) | set(baseline.topics))
        p = np.array([baseline.topics.get(t, 0) for t in names], dtype=float)
        q = np.array([current.topics.get(t, 0) for t in names], dtype=float)
        js = float(jensenshannon(p / p.sum(), q / q.sum(), base=2))
        new = sorted(set(current.topics) - set(baseline.topics))
        checks.append(_check("input_topic_js", js, f">= {JS_DRIFT}", js >= JS_DRIFT, new_topics=new[:10]))
    # TF-IDF on up to 5,000 prompts a side: plenty for a centroid, and fast.
    cur_p = [t for t in current.sample_prompts if t][:5000]
    base_p = [t for t in baseline.sample_prompts if t][:5000]
    if len(cur_p) >= 20 and len(base_p) >= 20:
        checks.append(
            _check("input_tfidf_cosine", tfidf_centroid_distance(base_p, cur_p), f">= {TFIDF_DRIFT}", False)
        )
        checks[-1]["fired"] = checks[-1]["statistic"] >= TFIDF_DRIFT
    return checks


def tfidf_centroid_distance(baseline: list[str], current: list[str]) -> float:
    """Cosine distance between the mean TF-IDF vectors of two prompt samples."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(max_features=5000, stop_words="english")
    x = vec.fit_transform(baseline + current)
    a = np.asarray(x[: len(baseline)].mean(axis=0)).ravel()
    b = np.asarray(x[len(baseline) :].mean(axis=0)).ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float(a @ b) / denom if denom else 1.0


def _trend(values: list[float]) -> tuple[float, float, float]:
    """Kendall τ against time, its p-value, and the least-squares slope per window."""
    from releasectl.stats.trend import kendall_tau, ols_slope  # scipy.stats' numbers, without its import

    tau, p = kendall_tau(range(len(values)), values)
    return tau, p, ols_slope(values)


def detect_reward_collapse(stats: LogStats) -> dict[str, Any]:
    """Proxy metric trending up while user satisfaction trends down, window by window."""
    windows = [(t, w) for t, w in sorted(stats.windows.items()) if w.satisfaction_n >= MIN_PER_WINDOW]
    sat = [w.satisfaction_sum / w.satisfaction_n for _, w in windows]
    window_text = f"{stats.window.total_seconds() / 3600:g}h"
    if len(sat) < MIN_WINDOWS:
        return _check(
            "reward_collapse",
            None,
            f"needs >= {MIN_WINDOWS} windows of {window_text} with satisfaction",
            False,
            skipped=True,
            windows=len(sat),
        )
    s_tau, s_p, s_slope = _trend(sat)
    result = _check(
        "reward_collapse",
        None,
        f"proxy τ > 0 and satisfaction τ < 0, both p < {TREND_P}",
        False,
        windows=len(sat),
        window=window_text,
        satisfaction={"tau": round(s_tau, 4), "p_value": s_p, "slope_per_window": round(s_slope, 6)},
        proxies={},
    )
    for name in PROXY_FIELDS:
        vals = [
            w.proxy_sum[name] / w.proxy_n[name]
            for _, w in windows
            if w.proxy_n.get(name) and w.satisfaction_n
        ]
        if len(vals) != len(sat):
            continue
        tau, p, slope = _trend(vals)
        fired = tau > 0 and p < TREND_P and s_tau < 0 and s_p < TREND_P
        result["proxies"][name] = {
            "tau": round(tau, 4),
            "p_value": p,
            "slope_per_window": round(slope, 6),
            "fired": fired,
        }
        if fired:
            result["fired"] = True
            result["statistic"] = round(tau - s_tau, 6)
    return result
