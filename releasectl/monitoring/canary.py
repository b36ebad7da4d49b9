"""Canary analysis: staging->production canary rules (seed 001 M5-L03) on the candidate's live
traffic against the baseline's, with the rules language and the gate's pass/fail/inconclusive
outcomes. Two sources give the observations; one function (`judge`) evaluates the rules on them.

- Logs (`run_canary`): per-request samples. Latency also gets a Kayenta-style Mann-Whitney U
  test, one-sided in the bad direction with an effect-size margin: H1 is "canary latency is
  stochastically greater than baseline latency × (1 + margin)". It is the metric
  `canary.latency_mann_whitney` (value: relative shift of the medians), checked by the built-in
  rule `canary.latency_mann_whitney.p_value >= ALPHA`.
- Prometheus (`run_canary_prometheus`): vLLM's series for each release, selected by the release
  label. There are no per-request samples, only histogram buckets, so latency gets
  `histogram_latency_test` instead (the metric `canary.latency_histogram_test`, same built-in
  rule shape): it decides fail, pass, or inconclusive where the buckets cannot tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasectl.gate.rules import (
    CANARY_METRICS,
    Observation,
    evaluate_rules,
    metric_refs,
    parse_rule,
    parse_rules,
    parse_rules_file,
    verdict_of,
)
from releasectl.monitoring.families import CostBasis, LogResolver, compute_metrics
from releasectl.monitoring.stats import scan

if TYPE_CHECKING:
    from releasectl.monitoring.prometheus import Histogram, PrometheusClient, QueryMap

MIN_REQUESTS = 5000
MIN_HOURS = 24.0
MARGIN = 0.10
ALPHA = 0.05
QUANTILE = 0.95
RANK_RULE = f"canary.latency_mann_whitney.p_value >= {ALPHA}"
HISTOGRAM_RULE = f"canary.latency_histogram_test.p_value >= {ALPHA}"
LATENCY_TESTS = ("latency_mann_whitney", "latency_histogram_test")
OBSERVED = tuple(m for m in CANARY_METRICS if m not in LATENCY_TESTS)


def canary_rules(rules_path: Path | None, text: str | None = None) -> list[Any]:
    """The rules whose every metric is `canary.*` (other lines belong to the offline gate)."""
    rules = (
        parse_rules(text, source="--rules")
        if text is not None
        else parse_rules_file(rules_path)
        if rules_path
        else []
    )
    return [r for r in rules if (refs := metric_refs(r)) and all(ref.namespace == "canary" for ref in refs)]


def shortfall(
    requests: int | None, span_hours: float | None, min_requests: int, min_hours: float
) -> str | None:
    """Why the canary's traffic is too little to decide on (seed 001: N > 5k requests over 24 h)."""
    if not requests or requests <= min_requests:
        return f"N={requests or 0:,} requests, need > {min_requests:,}"
    if span_hours is None:
        return f"no timestamps: cannot show a {min_hours:g} h window"
    if span_hours + 1e-9 < min_hours:
        return f"window {span_hours:.1f} h, need >= {min_hours:g} h"
    return None


def metric_doc(o: Observation) -> dict[str, Any]:
    """One canary.json metric (the gate's resolver reads exactly these keys)."""
    d: dict[str, Any] = {
        "value": o.value,
        "n": o.n,
        "lower_ci": o.lower_ci,
        "upper_ci": o.upper_ci,
        "count": o.count,
        "p_value": o.p_value,
    }
    if o.inconclusive_reason:
        d["inconclusive_reason"] = o.inconclusive_reason
    return d


@dataclass(frozen=True)
class Judgement:
    outcomes: list[Any]
    verdict: str
    reason: str


def judge(
    metrics: dict[str, dict[str, Any]],
    rules: list[Any],
    built_in: str,
    built_in_source: str,
    short: str | None,
) -> Judgement:
    """The canary rules plus the source's built-in latency test, on canary.json metrics from
    either source. Too little traffic (`short`) makes every metric inconclusive."""
    if short:
        for m in metrics.values():
            m["inconclusive_reason"] = short
    resolver = LogResolver(
        {
            k: Observation(
                m["value"],
                n=m["n"],
                lower_ci=m["lower_ci"],
                upper_ci=m["upper_ci"],
                p_value=m["p_value"],
                count=m["count"],
                inconclusive_reason=m.get("inconclusive_reason"),
            )
            for k, m in metrics.items()
        },
        namespace="canary",
    )
    outcomes = evaluate_rules([*rules, parse_rule(built_in, source=built_in_source)], resolver)
    verdict, reason = verdict_of(outcomes)
    return Judgement(outcomes, verdict, reason)


def rank_test(canary: list[float], baseline: list[float], margin: float) -> Observation:
    """One-sided Mann-Whitney U: is the canary slower than baseline by more than `margin`?"""
    from scipy.stats import mannwhitneyu

    c = [x for x in canary if not math.isnan(x)]
    b = [x for x in baseline if not math.isnan(x)]
    if len(c) < 20 or len(b) < 20:
        return Observation(None, n=len(c), inconclusive_reason="fewer than 20 latencies on a side")
    test = mannwhitneyu(c, [x * (1 + margin) for x in b], alternative="greater")
    import numpy as np

    shift = float(np.median(c) / np.median(b) - 1) if np.median(b) else None
    return Observation(shift, n=len(c), p_value=float(test.pvalue))


def run_canary(
    canary_logs: Path,
    baseline_logs: Path,
    rules: list[Any],
    basis: CostBasis,
    *,
    min_requests: int = MIN_REQUESTS,
    min_hours: float = MIN_HOURS,
    margin: float = MARGIN,
) -> dict[str, Any]:
    """canary.json as a dict, from logs: metrics (the gate reads exactly these), rule outcomes, verdict."""
    from releasectl.gate.stats import wilson_interval

    cur, base = scan(canary_logs), scan(baseline_logs)
    obs = compute_metrics(cur, basis)
    metrics: dict[str, dict[str, Any]] = {}
    for name in OBSERVED:
        d = metric_doc(obs[name])
        if name in ("abandon_rate", "error_rate") and obs[name].n:
            d["lower_ci"], d["upper_ci"] = wilson_interval(int(obs[name].count or 0), int(obs[name].n or 0))
        metrics[name] = d
    rt = rank_test(cur.sample_latency, base.sample_latency, margin)
    metrics["latency_mann_whitney"] = {
        **metric_doc(rt),
        "margin": margin,
        "alternative": "canary slower than baseline × (1 + margin)",
        "baseline_n": len(base.sample_latency),
    }
    metrics["latency_p95_ms"]["p_value"] = rt.p_value
    short = shortfall(cur.requests, cur.span_hours, min_requests, min_hours)
    judged = judge(metrics, rules, RANK_RULE, "built-in (Kayenta-style rank test)", short)
    base_obs = compute_metrics(base, basis)
    return _document(
        source=str(canary_logs),
        baseline=str(baseline_logs),
        window_hours=cur.span_hours,
        requests=cur.requests,
        baseline_requests=base.requests,
        extra={"malformed": {"canary": cur.malformed.to_dict(), "baseline": base.malformed.to_dict()}},
        minimums={"requests_over": min_requests, "hours": min_hours},
        metrics=metrics,
        baseline_metrics={k: base_obs[k].value for k in OBSERVED},
        judged=judged,
    )


def _document(
    *,
    source: str,
    baseline: str,
    window_hours: float | None,
    requests: int | None,
    baseline_requests: int | None,
    extra: dict[str, Any],
    minimums: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    baseline_metrics: dict[str, Any],
    judged: Judgement,
) -> dict[str, Any]:
    """canary.json (contracts/canary.py), the same shape from either source."""
    return {
        "schema_version": 1,
        "source": source,
        "baseline": baseline,
        "window_hours": window_hours,
        "requests": requests,
        "baseline_requests": baseline_requests,
        **extra,
        "minimums": minimums,
        "metrics": metrics,
        "baseline_metrics": baseline_metrics,
        "rules": [o.to_dict() for o in judged.outcomes],
        "verdict": judged.verdict,
        "reason": judged.reason,
    }


# --- Prometheus ----------------------------------------------------------------------------


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= k)."""
    from scipy.stats import binom

    return 1.0 if k <= 0 else float(binom.sf(k - 1, n, p))


def quantile_bracket(h: Histogram, q: float, alpha: float) -> tuple[float, float]:
    """Bounds (lo, hi) with P(quantile_q < lo) <= alpha and P(quantile_q > hi) <= alpha, from the
    buckets alone: exact order-statistic ranks, each widened to the edge of its bucket (no
    interpolation). hi is +inf when the quantile may lie beyond the largest finite bound."""
    from scipy.stats import binom

    n = h.total
    r_lo = int(binom.ppf(alpha, n, q))  # q-quantile >= X_(r_lo) with probability >= 1 - alpha
    r_hi = int(binom.ppf(1 - alpha, n, q)) + 1  # q-quantile <= X_(r_hi) likewise
    lo = 0.0
    if r_lo >= 1:
        j = next(i for i, c in enumerate(h.cumulative) if c >= r_lo)
        lo = h.bounds[j - 1] if j else 0.0
    hi = math.inf
    if r_hi <= n:
        hi = h.bounds[next(i for i, c in enumerate(h.cumulative) if c >= r_hi)]
    return lo, hi


def histogram_latency_test(
    canary: Histogram | None,
    baseline: Histogram | None,
    *,
    margin: float = MARGIN,
    alpha: float = ALPHA,
    q: float = QUANTILE,
) -> dict[str, Any]:
    """Is the canary's p95 latency above the baseline's × (1 + margin)? From histogram buckets.

    The baseline's p95 is bracketed by [lo, hi] (`quantile_bracket`, α/2 each side). The canary
    fails when, counting only requests *certainly* slower than T = hi × (1 + margin) (above the
    first bucket bound at or past T), more than 5 % of its requests are slower: a one-sided
    binomial test of "share slower than T <= 1 − q", significant at α/2. It passes when even
    counting every request *possibly* slower than T' = lo × (1 + margin) (above the last bound at
    or below T') the same test is not significant. Otherwise the buckets straddle the threshold
    and the test is inconclusive. p_value is the binomial p-value doubled (Bonferroni for the
    baseline bound), so the built-in rule `p_value >= α` reads like the rank test's, and a wrong
    "fail" has probability <= α.
    """
    doc: dict[str, Any] = {
        "value": None,
        "n": canary.total if canary else None,
        "lower_ci": None,
        "upper_ci": None,
        "count": None,
        "p_value": None,
        "margin": margin,
        "quantile": q,
        "alternative": f"canary p{q * 100:g} slower than baseline p{q * 100:g} × (1 + margin)",
        "baseline_n": baseline.total if baseline else None,
    }
    if canary is None or baseline is None:
        doc["inconclusive_reason"] = (
            f"no data: no latency histogram for the {'canary' if canary is None else 'baseline'}"
        )
        return doc
    if canary.total < 20 or baseline.total < 20:
        doc["inconclusive_reason"] = "fewer than 20 latencies on a side"
        return doc
    lo, hi = quantile_bracket(baseline, q, alpha / 2)
    doc["baseline_quantile_bracket_ms"] = [lo * 1000, None if math.isinf(hi) else hi * 1000]
    if math.isinf(hi):
        doc["inconclusive_reason"] = "the baseline's p95 may lie beyond the largest finite bucket"
        return doc
    fail_at, pass_at = hi * (1 + margin), lo * (1 + margin)
    certain = canary.above(fail_at, certainly=True)
    possible = canary.above(pass_at, certainly=False)
    p_fail = min(1.0, 2 * _binomial_tail(certain, canary.total, 1 - q))
    p_pass = min(1.0, 2 * _binomial_tail(possible, canary.total, 1 - q))
    doc["evidence"] = {
        "fail_threshold_ms": fail_at * 1000,
        "certainly_slower": certain,
        "p_value_fail": p_fail,
        "pass_threshold_ms": pass_at * 1000,
        "possibly_slower": possible,
        "p_value_pass": p_pass,
    }
    if p_fail < alpha:
        doc["p_value"] = p_fail
    elif p_pass >= alpha:
        doc["p_value"] = p_pass
    else:
        doc["p_value"] = p_fail
        doc["inconclusive_reason"] = (
            f"the buckets cannot decide: {certain} of {canary.total} requests are certainly slower than "
            f"{fail_at * 1000:.0f} ms (p={p_fail:.3g}), {possible} possibly slower than {pass_at * 1000:.0f} ms "
            f"(p={p_pass:.3g}); finer buckets or a margin past the bucket width would decide"
        )
    return doc


def _finite(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b - 1 if a is not None and b and math.isfinite(a) and math.isfinite(b) else None


def beyond_largest_bucket(name: str, histogram: Histogram | None, n: int | None) -> Observation:
    """A quantile Prometheus answered +Inf: slower than the largest finite bucket bound. A real
    answer, not "no series", but one the buckets bound only from below: rules on its value are
    inconclusive (a hold), and the histogram test (`histogram_latency_test`), which counts the
    requests certainly slower than its threshold, fails the canary where that is certain."""
    finite = [b for b in (histogram.bounds if histogram else ()) if math.isfinite(b)]
    bound = f" ({max(finite) * 1000:g} ms)" if finite else ""
    return Observation(
        None,
        n=n,
        lower_ci=max(finite) * 1000 if finite else None,
        inconclusive_reason=f"{name} is slower than the largest finite latency bucket{bound}: Prometheus "
        "answered +Inf, which bounds it only from below",
    )


@dataclass(frozen=True)
class PrometheusCanary:
    """Where `canary --prometheus` reads: the server, the two releases, the window, the mapping."""

    client: PrometheusClient
    query_map: QueryMap
    release: str
    baseline_release: str
    window: str


def prometheus_metrics(
    values: dict[str, float | None], latency: Histogram | None, basis: CostBasis, release: str
) -> dict[str, dict[str, Any]]:
    """canary.json metrics from one release's PromQL answers (None: no series, or not mapped)."""
    from releasectl.gate.stats import wilson_interval
    from releasectl.monitoring.prometheus import QUANTILE_METRICS

    def count(name: str) -> int | None:
        v = values.get(name)
        return None if v is None else round(v)

    requests, n_latency = count("requests"), latency.total if latency else None
    metrics: dict[str, dict[str, Any]] = {}
    for name in OBSERVED:
        if name not in values and name != "cost_per_1k_tokens_usd":
            why = f"not measured by this source: no Prometheus query maps {name} (policy.prometheus.queries)"
            metrics[name] = metric_doc(Observation(None, inconclusive_reason=why))
            continue
        value = values.get(name)
        o = Observation(value, n=n_latency if "latency" in name else requests)
        if name == "cost_per_1k_tokens_usd" and name not in values:
            o = _manifest_cost(basis)
        elif name == "requests":
            o = Observation(value, n=requests, count=requests)
        elif name == "safety_incidents":
            o = Observation(value, n=requests, count=count(name))
        elif name == "error_rate" and value is not None:
            errors, answered = count("errors"), count("completion_requests")
            o = Observation(value, n=answered, count=errors)
            if errors is not None and answered:
                lo, hi = wilson_interval(min(errors, answered), answered)
                o = Observation(value, n=answered, count=errors, lower_ci=lo, upper_ci=hi)
        elif name == "abandon_rate" and value is not None and requests:
            k = min(round(value * requests), requests)
            lo, hi = wilson_interval(k, requests)
            o = Observation(value, n=requests, count=k, lower_ci=lo, upper_ci=hi)
        elif name in QUANTILE_METRICS and value is not None and math.isinf(value):
            o = beyond_largest_bucket(name, latency if name.startswith("latency_p") else None, n_latency)
        elif name.startswith("latency_p") and value is not None and latency is not None and latency.total:
            q = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}[name]
            lo, hi = quantile_bracket(latency, q, ALPHA / 2)
            o = Observation(
                value, n=n_latency, lower_ci=lo * 1000, upper_ci=None if math.isinf(hi) else hi * 1000
            )
        if o.value is None and o.inconclusive_reason is None:
            o = Observation(None, n=o.n, inconclusive_reason=f"no data: no series for {name} of {release}")
        metrics[name] = metric_doc(o)
    return metrics


def _manifest_cost(basis: CostBasis) -> Observation:
    if basis.gpu_hourly_usd is None or not basis.tokens_per_second_per_gpu:
        return Observation(None, inconclusive_reason="no cost query and no manifest infrastructure")
    # Generated tokens are what the GPUs are sized for (the capacity plan's convention, as in logs).
    return Observation(basis.gpu_hourly_usd / (basis.tokens_per_second_per_gpu * 3600) * 1000)


def run_canary_prometheus(
    source: PrometheusCanary,
    rules: list[Any],
    basis: CostBasis,
    *,
    min_requests: int = MIN_REQUESTS,
    min_hours: float = MIN_HOURS,
    margin: float = MARGIN,
) -> dict[str, Any]:
    """canary.json as a dict, from the two releases' series in Prometheus; `judge` decides, as for logs."""
    from releasectl.monitoring.prometheus import WINDOW_UNITS, release_histogram, release_metrics

    cur = release_metrics(source.client, source.query_map, source.release, source.window)
    base = release_metrics(source.client, source.query_map, source.baseline_release, source.window)
    cur_hist, hist_query = release_histogram(source.client, source.query_map, source.release, source.window)
    base_hist, base_hist_query = release_histogram(
        source.client, source.query_map, source.baseline_release, source.window
    )
    metrics = prometheus_metrics(cur.values, cur_hist, basis, source.release)
    test = histogram_latency_test(cur_hist, base_hist, margin=margin)
    test["value"] = _ratio(cur.values.get("latency_p95_ms"), base.values.get("latency_p95_ms"))
    metrics["latency_histogram_test"] = test
    metrics["latency_p95_ms"]["p_value"] = test["p_value"]
    window_s = int(source.window[:-1]) * WINDOW_UNITS[source.window[-1]]
    span = cur.values.get("span_seconds")
    span_hours = None if span is None else min(span, window_s) / 3600
    requests = metrics["requests"]["n"]
    short = shortfall(requests, span_hours, min_requests, min_hours)
    if not cur.has_data:
        short = f"no data: no series for release {source.release} in Prometheus over {source.window}"
    judged = judge(metrics, rules, HISTOGRAM_RULE, "built-in (histogram p95 test)", short)
    base_requests = base.values.get("requests")
    return _document(
        source=source.client.url,
        baseline=source.client.url,
        window_hours=span_hours,
        requests=requests,
        baseline_requests=None if base_requests is None else round(base_requests),
        extra={
            "release": source.release,
            "baseline_release": source.baseline_release,
            "prometheus": {
                "url": source.client.url,
                "window": source.window,
                "release_label": source.query_map.release_label,
                "queries": {**cur.queries, "latency_seconds_buckets": hist_query},
                "baseline_queries": {**base.queries, "latency_seconds_buckets": base_hist_query},
            },
        },
        minimums={"requests_over": min_requests, "hours": min_hours},
        metrics=metrics,
        # +Inf (a quantile beyond the largest bucket) is no JSON number: null, as in metrics.
        baseline_metrics={k: _finite(base.values.get(k)) for k in OBSERVED},
        judged=judged,
    )
