"""Seed 004's relative gate for one traffic step, decided with anytime-valid comparisons.

| metric | requirement (defaults) | comparison |
| --- | --- | --- |
| task completion (1 − abandoned) | candidate ≥ old − 2 points | `compare_rates`, higher is better |
| p95 latency | candidate ≤ old × 1.2 | `compare_quantiles`, p = 0.95 |
| error rate | candidate ≤ old + 0.5 points | `compare_rates`, lower is better |
| user satisfaction (if tracked) | candidate ≥ old − 5 % of the rating scale | `compare_rates` on ratings scaled to [0, 1] |

Each comparison uses confidence sequences (docs/sequential.md), so the step may be analysed every
hour and stopped at the first look that decides without inflating its error rates. The overall
level α is split over the metrics compared (Bonferroni), so a wrong "fail" on any metric — or a
wrong "pass" of the whole step — has probability ≤ α at every look.

The outcome is `pass` when every metric passes, `fail` when any fails, `hold` otherwise (the data
cannot decide yet: keep the step running and look again). Pure: it takes observation arrays, so
request logs (`observations.py`) and a metrics source such as Prometheus feed it alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from releasectl.stats.sequential import Comparison, Interval, compare_quantiles, compare_rates

Outcome = Literal["pass", "fail", "hold"]
METRICS = ("task_completion", "latency_p95_ms", "error_rate", "satisfaction")
RATING_MIN, RATING_MAX = 1.0, 5.0  # user_satisfaction's scale (docs/logs.md)


@dataclass(frozen=True)
class Margins:
    """How much worse than the baseline a step may be (seed 004's table)."""

    completion: float = 0.02
    """Task completion ≥ old − this (an absolute share: 0.02 is 2 points)."""
    p95_ratio: float = 1.2
    """p95 latency ≤ old × this."""
    error: float = 0.005
    """Error rate ≤ old + this (0.005 is 0.5 points)."""
    satisfaction: float = 0.05
    """Mean satisfaction ≥ old − this share of the rating scale (0.05 × 4 = 0.2 points on 1–5)."""
    alpha: float = 0.05
    """Overall error level of a step's decision, split over the metrics compared."""
    min_step_minutes: int = 0
    """How long a step runs before it may pass (a younger step's pass is a hold); 0: no minimum."""

    def to_dict(self) -> dict[str, float]:
        return {
            "completion": self.completion,
            "p95_ratio": self.p95_ratio,
            "error": self.error,
            "satisfaction": self.satisfaction,
            "alpha": self.alpha,
            "min_step_minutes": self.min_step_minutes,
        }


@dataclass(frozen=True)
class Observations:
    """One side's requests in the step's window, in arrival order (confidence sequences are
    sequential: the order must not depend on the values)."""

    completed: np.ndarray  # per request: 1.0 when the user did not abandon it
    errors: np.ndarray  # per request: 1.0 when it failed (an error or a timeout)
    latency_ms: np.ndarray  # per request that reports one
    satisfaction: np.ndarray  # per rated request, on the 1–5 scale

    @property
    def requests(self) -> int:
        return len(self.completed)

    @classmethod
    def empty(cls) -> Observations:
        e = np.zeros(0)
        return cls(e, e, e, e)


@dataclass(frozen=True)
class MetricResult:
    metric: str
    rule: str
    decision: Literal["pass", "fail", "undecided", "not_tracked"]
    detail: str
    canary: Interval | None = None
    baseline: Interval | None = None
    bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "rule": self.rule,
            "decision": self.decision,
            "detail": self.detail,
            "canary": _interval(self.canary),
            "baseline": _interval(self.baseline),
            "bound": _finite(self.bound),
        }


@dataclass(frozen=True)
class StepAnalysis:
    outcome: Outcome
    reason: str
    metrics: list[MetricResult]
    margins: Margins
    alpha_per_metric: float
    canary_requests: int
    baseline_requests: int
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.decision == "fail"]

    def summary(self) -> dict[str, Any]:
        """What a history event records (`RolloutAnalysis`)."""
        return {
            "outcome": self.outcome,
            "canary_requests": self.canary_requests,
            "baseline_requests": self.baseline_requests,
            **{m.metric: m.decision for m in self.metrics},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "margins": self.margins.to_dict(),
            "alpha_per_metric": self.alpha_per_metric,
            "canary_requests": self.canary_requests,
            "baseline_requests": self.baseline_requests,
            "metrics": [m.to_dict() for m in self.metrics],
            "notes": self.notes,
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _interval(i: Interval | None) -> dict[str, Any] | None:
    if i is None:
        return None
    return {"estimate": _finite(i.estimate), "lower": _finite(i.lower), "upper": _finite(i.upper), "n": i.n}


def metric_result(
    metric: str, rule: str, c: Comparison, *, scale: float = 1.0, shift: float = 0.0
) -> MetricResult:
    """A comparison as a metric result; `scale`/`shift` map scaled values back to the metric's units."""

    def back(i: Interval) -> Interval:
        return Interval(i.lower * scale + shift, i.upper * scale + shift, i.estimate * scale + shift, i.n)

    detail = c.detail if c.decision != "undecided" else f"undecided: {c.detail}"
    if c.candidate.n == 0 or c.baseline.n == 0:
        side = "canary" if c.candidate.n == 0 else "baseline"
        detail = f"undecided: no {side} observations in the step's window"
    return MetricResult(
        metric, rule, c.decision, detail, back(c.candidate), back(c.baseline), c.bound * scale + shift
    )


def rules(m: Margins) -> dict[str, str]:
    """Each metric's requirement as the output states it, whatever the source of the data."""
    span = RATING_MAX - RATING_MIN
    return {
        "task_completion": f"canary ≥ baseline − {m.completion:g}",
        "latency_p95_ms": f"canary p95 ≤ baseline p95 × {m.p95_ratio:g}",
        "error_rate": f"canary ≤ baseline + {m.error:g}",
        "satisfaction": f"canary ≥ baseline − {m.satisfaction:g} × scale ({m.satisfaction * span:g} points on 1–5)",
    }


def analyze_step(
    canary: Observations, baseline: Observations, margins: Margins | None = None
) -> StepAnalysis:
    """Seed 004's gate for one step: pass (every metric passes), fail (any fails), else hold."""
    m = margins or Margins()
    tracked = canary.satisfaction.size > 0 or baseline.satisfaction.size > 0
    alpha = m.alpha / (4 if tracked else 3)
    span = RATING_MAX - RATING_MIN
    text = rules(m)
    results = [
        metric_result(
            "task_completion",
            text["task_completion"],
            compare_rates(
                canary.completed, baseline.completed, margin=m.completion, higher_is_better=True, alpha=alpha
            ),
        ),
        metric_result(
            "latency_p95_ms",
            text["latency_p95_ms"],
            compare_quantiles(canary.latency_ms, baseline.latency_ms, p=0.95, ratio=m.p95_ratio, alpha=alpha),
        ),
        metric_result(
            "error_rate",
            text["error_rate"],
            compare_rates(
                canary.errors, baseline.errors, margin=m.error, higher_is_better=False, alpha=alpha
            ),
        ),
    ]
    rule = text["satisfaction"]
    if tracked:
        scaled = [(s - RATING_MIN) / span for s in (canary.satisfaction, baseline.satisfaction)]
        c = compare_rates(*scaled, margin=m.satisfaction, higher_is_better=True, alpha=alpha)
        results.append(metric_result("satisfaction", rule, c, scale=span, shift=RATING_MIN))
    else:
        results.append(
            MetricResult("satisfaction", rule, "not_tracked", "no user_satisfaction on either side")
        )
    return conclude(results, m, alpha, canary.requests, baseline.requests)


def conclude(
    results: list[MetricResult], margins: Margins, alpha: float, canary_requests: int, baseline_requests: int
) -> StepAnalysis:
    """The step's outcome from its metrics, whatever their source: fail when any fails, pass when
    every one compared passes, hold otherwise. Nothing compared at all is a hold, never a pass."""
    decided = [r for r in results if r.decision != "not_tracked"]
    failed = [r.metric for r in decided if r.decision == "fail"]
    undecided = [r.metric for r in decided if r.decision == "undecided"]
    outcome: Outcome
    if failed:
        outcome, reason = "fail", "worse than allowed: " + ", ".join(failed)
    elif undecided:
        outcome, reason = "hold", "the data cannot decide yet: " + ", ".join(undecided)
    elif not decided:
        outcome, reason = "hold", "no metric of the gate is measured: nothing to decide on"
    else:
        outcome, reason = "pass", f"all {len(decided)} metrics within their margins"
    return StepAnalysis(outcome, reason, results, margins, alpha, canary_requests, baseline_requests)
