"""Canary analysis: staging->production canary rules (seed 001 M5-L03) on canary vs baseline logs,
with the rules language and the gate's pass/fail/inconclusive outcomes.

Latency also gets a Kayenta-style Mann-Whitney U test, one-sided in the bad direction with an
effect-size margin: H1 is "canary latency is stochastically greater than baseline latency × (1 +
margin)", so it fails only when the canary is significantly slower by more than the margin. It is
the metric `canary.latency_mann_whitney` (value: relative shift of the medians; p_value: the test's),
checked by the built-in rule `canary.latency_mann_whitney.p_value >= ALPHA`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
from releasectl.monitoring.stats import LogStats, scan

MIN_REQUESTS = 5000
MIN_HOURS = 24.0
MARGIN = 0.10
ALPHA = 0.05
RANK_RULE = f"canary.latency_mann_whitney.p_value >= {ALPHA}"


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


def _shortfall(stats: LogStats, min_requests: int, min_hours: float) -> str | None:
    span = stats.span_hours
    if stats.requests <= min_requests:
        return f"N={stats.requests:,} requests, need > {min_requests:,}"
    if span is None:
        return f"no timestamps: cannot show a {min_hours:g} h window"
    if span + 1e-9 < min_hours:
        return f"window {span:.1f} h, need >= {min_hours:g} h"
    return None


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
    """canary.json as a dict: metrics (the gate reads exactly these), rule outcomes and verdict."""
    from releasectl.gate.stats import wilson_interval

    cur, base = scan(canary_logs), scan(baseline_logs)
    obs = compute_metrics(cur, basis)
    short = _shortfall(cur, min_requests, min_hours)
    metrics: dict[str, dict[str, Any]] = {}
    for name in CANARY_METRICS[:-1]:
        o = obs[name]
        d: dict[str, Any] = {
            "value": o.value,
            "n": o.n,
            "lower_ci": None,
            "upper_ci": None,
            "count": o.count,
            "p_value": None,
        }
        if name in ("abandon_rate", "error_rate") and o.n:
            d["lower_ci"], d["upper_ci"] = wilson_interval(int(o.count or 0), int(o.n))
        if o.inconclusive_reason or short:
            d["inconclusive_reason"] = short or o.inconclusive_reason
        metrics[name] = d
    rt = rank_test(cur.sample_latency, base.sample_latency, margin)
    metrics["latency_mann_whitney"] = {
        "value": rt.value,
        "n": rt.n,
        "lower_ci": None,
        "upper_ci": None,
        "count": None,
        "p_value": rt.p_value,
        "margin": margin,
        "alternative": "canary slower than baseline × (1 + margin)",
        "baseline_n": len(base.sample_latency),
    }
    if rt.inconclusive_reason or short:
        metrics["latency_mann_whitney"]["inconclusive_reason"] = short or rt.inconclusive_reason
    metrics["latency_p95_ms"]["p_value"] = rt.p_value
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
    all_rules = [*rules, parse_rule(RANK_RULE, source="built-in (Kayenta-style rank test)")]
    outcomes = evaluate_rules(all_rules, resolver)
    verdict, reason = verdict_of(outcomes)
    base_obs = compute_metrics(base, basis)
    return {
        "schema_version": 1,
        "source": str(canary_logs),
        "baseline": str(baseline_logs),
        "window_hours": cur.span_hours,
        "requests": cur.requests,
        "baseline_requests": base.requests,
        "malformed": {"canary": cur.malformed.to_dict(), "baseline": base.malformed.to_dict()},
        "minimums": {"requests_over": min_requests, "hours": min_hours},
        "metrics": metrics,
        "baseline_metrics": {k: base_obs[k].value for k in CANARY_METRICS[:-1]},
        "rules": [o.to_dict() for o in outcomes],
        "verdict": verdict,
        "reason": reason,
    }
