"""Prometheus as the source of a traffic step's analysis: seed 004's gate on counters.

The request-log path (`observations` → `analysis.analyze_step`) sees every request; Prometheus
gives counts and histogram buckets. This module reads those counts per release since the step
started and decides the same gate on them with statistics valid for count data, which stay
anytime-valid however often the step is analysed:

| metric | counts (QueryMap metric) | decision |
| --- | --- | --- |
| error rate | 5xx completions (`errors`) of all completion requests (`completion_requests`) | `compare_rate_counts`: the beta-mixture CS is a function of (successes, n) only, so the counts of every look lie on one confidence sequence; `decide_rates`, as the log path |
| p95 latency | the latency histogram (`latency_seconds_buckets`) | `histogram_quantile_cs`: the quantile CS of the log path (`bernoulli_count_range` on the rank of the p95) with each order statistic widened to its bucket's bounds; `decide_quantiles` decides only when the brackets do, else hold |
| task completion | only where the manifest maps `abandon_rate` (vLLM does not export it), over vLLM's finished requests (`requests`) | `compare_rate_counts`, higher is better |
| satisfaction | not measured: a mean rating without the number of ratings has no confidence sequence | left out |

A metric the source does not measure is reported as "not measured by this source" and left out of
the decision (and of the Bonferroni split of α); the decision rests on the metrics measured, and
with none measured it is a hold, never a pass. No series is no data: a hold.

**Since the step started.** Every query is evaluated at one instant (`time=` now) over the range
`[Ns]`, N the whole seconds since the step started (since the rollout started for the baseline at
a 100 % step, as on the log path), with the QueryMap's own `increase(…[{w}])` templates, so a
manifest's overrides apply unchanged. This works on Prometheus 2.42. `increase()` handles counter
resets (a restarted pod) and series born during the step (new canary pods); the alternative,
`x - x @ <start>` (the `@` modifier, on by default since 2.33), gives no value for a series born
after the start and miscounts across resets. The price is `increase()`'s extrapolation to the
range's ends and the requests a new series served before its first scrape: the counts are rounded
and can be off by about a scrape interval's traffic, on both sides of the ratio alike.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasectl.errors import BadInput
from releasectl.rollout.analysis import (
    Margins,
    MetricResult,
    StepAnalysis,
    conclude,
    metric_result,
    rules,
)
from releasectl.stats.sequential import Interval

if TYPE_CHECKING:
    from releasectl.monitoring.prometheus import Histogram, PrometheusClient, QueryMap
    from releasectl.rollout.steps import StepReport

P95 = 0.95
ALWAYS_MEASURED = ("error_rate", "latency_p95_ms")
NOT_MEASURED = "not measured by this source"


@dataclass(frozen=True)
class StepCounts:
    """One release's counts since `since`, as Prometheus gives them (None: no series)."""

    release: str
    since: str
    range: str | None  # the PromQL range read, e.g. "3600s"; None when the step is too young
    completion_requests: int | None
    errors: int | None
    latency: Histogram | None  # bounds in seconds
    requests: int | None = None  # vLLM's finished requests: the abandon rate's n (when mapped)
    abandoned: int | None = None
    queries: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def observed(self) -> int:
        """Completion requests counted: what the output reports as the side's requests."""
        return self.completion_requests or 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "since": self.since,
            "range": self.range,
            "requests": self.observed,
            "completion_requests": self.completion_requests,
            "errors": self.errors,
            "latency_observations": self.latency.total if self.latency else None,
            "latency_buckets": _buckets(self.latency),
            "finished_requests": self.requests,
            "abandoned": self.abandoned,
            "queries": self.queries,
            "notes": self.notes,
        }


def _buckets(h: Histogram | None) -> list[list[Any]] | None:
    if h is None:
        return None
    return [["+Inf" if math.isinf(b) else b, c] for b, c in zip(h.bounds, h.cumulative, strict=True)]


# --- the statistics: a quantile CS from buckets, and the gate on counts ------------------------


def histogram_quantile_cs(h: Histogram | None, p: float, alpha: float) -> Interval:
    """CS for the p-quantile (in ms) from cumulative bucket counts (bounds in seconds).

    The log path's quantile CS (`quantile_cs`) takes the order statistics at the ends of the count
    CS `bernoulli_count_range`: whp at least `lo` and at most `hi` observations lie at or below the
    quantile, so it lies between the lo-th and the (hi + 1)-th smallest. Buckets hide the order
    statistics but not their buckets: the lo-th lies above the lower bound of the first bucket whose
    cumulative count reaches lo, the (hi + 1)-th at or below the upper bound of the first reaching
    hi + 1. Widening each end to those bounds keeps the coverage, at every look (latencies are
    non-negative, so the lowest lower bound is 0; an end in the +Inf bucket is unbounded).
    `monitoring.canary.quantile_bracket` brackets the same way, but from fixed-horizon binomial
    ranks, which checked at every look would not stay valid."""
    from releasectl.stats.sequential import bernoulli_count_range

    if h is None or h.total == 0:
        return Interval(-math.inf, math.inf, math.nan, 0)
    n = h.total
    lo, hi = bernoulli_count_range(n, p, alpha)
    lower = 0.0
    if lo >= 1:
        j = _first_reaching(h, lo)
        lower = h.bounds[j - 1] if j > 0 else 0.0
    upper = h.bounds[_first_reaching(h, hi + 1)] if hi + 1 <= n else math.inf
    return Interval(lower * 1000, upper * 1000, _interpolated(h, p) * 1000, n)


def _first_reaching(h: Histogram, count: float) -> int:
    return next(i for i, c in enumerate(h.cumulative) if c >= count)


def _bucket(h: Histogram, p: float) -> tuple[float, float]:
    """The bounds (seconds) of the bucket holding the p-quantile's rank, as histogram_quantile finds it."""
    j = _first_reaching(h, max(1, math.ceil(p * h.total)))
    return (h.bounds[j - 1] if j > 0 else 0.0), h.bounds[j]


def _interpolated(h: Histogram, p: float) -> float:
    """The point estimate PromQL's histogram_quantile gives: linear within the bucket of the rank."""
    rank = p * h.total
    j = _first_reaching(h, rank)
    if math.isinf(h.bounds[j]):
        return h.bounds[j - 1] if j > 0 else math.nan
    below = h.cumulative[j - 1] if j > 0 else 0
    start = h.bounds[j - 1] if j > 0 else 0.0
    inside = h.cumulative[j] - below
    return start + (h.bounds[j] - start) * ((rank - below) / inside if inside else 1.0)


def measured_metrics(query_map: QueryMap) -> tuple[str, ...]:
    """The gate's metrics a query map measures: error rate and p95 always (vLLM exports them),
    task completion where the manifest maps `abandon_rate`; satisfaction never (see the module)."""
    return (*ALWAYS_MEASURED, *(("task_completion",) if "abandon_rate" in query_map.queries else ()))


def analyze_counts(
    canary: StepCounts,
    baseline: StepCounts,
    margins: Margins | None = None,
    *,
    measured: Collection[str] = ALWAYS_MEASURED,
) -> StepAnalysis:
    """Seed 004's gate on one step's counts: `analysis.conclude` over the metrics `measured`, α
    split over them; the others are reported as not measured and left out of the decision."""
    m = margins or Margins()
    compared = [name for name in ("task_completion", "latency_p95_ms", "error_rate") if name in measured]
    alpha = m.alpha / max(1, len(compared))
    text = rules(m)
    results: list[MetricResult] = []
    for name in ("task_completion", "latency_p95_ms", "error_rate", "satisfaction"):
        if name not in compared:
            results.append(MetricResult(name, text[name], "not_tracked", _not_measured(name)))
        elif name == "latency_p95_ms":
            results.append(_latency(canary, baseline, m.p95_ratio, alpha, text[name]))
        else:
            results.append(_rate(name, canary, baseline, m, alpha, text[name]))
    analysis = conclude(results, m, alpha, canary.observed, baseline.observed)
    left_out = [r.metric for r in results if r.decision == "not_tracked"]
    if left_out:
        analysis.notes.append(
            f"{', '.join(left_out)}: {NOT_MEASURED}, left out of the decision, which rests on "
            + (", ".join(compared) if compared else "nothing (a hold)")
        )
    return analysis


def _not_measured(metric: str) -> str:
    if metric == "task_completion":
        return (
            f"{NOT_MEASURED}: vLLM exports no abandoned requests; map abandon_rate in the manifest's "
            "policy.prometheus.queries to measure it"
        )
    if metric == "satisfaction":
        return (
            f"{NOT_MEASURED}: Prometheus holds no per-request ratings, and a mean rating without the "
            "number of ratings has no confidence sequence"
        )
    return f"{NOT_MEASURED}: no query maps it"


def _counts(name: str, side: StepCounts) -> tuple[int, int] | None:
    """(successes, n) of a rate metric, None without series."""
    if name == "error_rate":
        if side.errors is None or side.completion_requests is None:
            return None
        return side.errors, side.completion_requests
    if side.abandoned is None or side.requests is None:
        return None
    return side.requests - side.abandoned, side.requests


def _no_series(name: str, canary: StepCounts, baseline: StepCounts) -> str:
    side = canary if _counts(name, canary) is None else baseline
    which = "canary" if side is canary else "baseline"
    if side.range is None:
        return f"undecided: no data: the {which}'s window since {side.since} is under a second"
    return f"undecided: no data: no series for {name} of {side.release} ({which}) since {side.since}"


def _rate(
    name: str, canary: StepCounts, baseline: StepCounts, m: Margins, alpha: float, rule: str
) -> MetricResult:
    from releasectl.stats.sequential import compare_rate_counts

    c, b = _counts(name, canary), _counts(name, baseline)
    if c is None or b is None:
        return MetricResult(name, rule, "undecided", _no_series(name, canary, baseline))
    higher = name == "task_completion"
    margin = m.completion if higher else m.error
    return metric_result(
        name, rule, compare_rate_counts(c, b, margin=margin, higher_is_better=higher, alpha=alpha)
    )


def _latency(canary: StepCounts, baseline: StepCounts, ratio: float, alpha: float, rule: str) -> MetricResult:
    from releasectl.stats.sequential import decide_quantiles

    name = "latency_p95_ms"
    if canary.latency is None or baseline.latency is None:
        side = canary if canary.latency is None else baseline
        which = "canary" if side is canary else "baseline"
        return MetricResult(
            name,
            rule,
            "undecided",
            f"undecided: no data: no latency histogram of {side.release} ({which}) since {side.since}",
        )
    c = histogram_quantile_cs(canary.latency, P95, alpha / 2)
    b = histogram_quantile_cs(baseline.latency, P95, alpha / 2)
    result = metric_result(name, rule, decide_quantiles(c, b, p=P95, ratio=ratio))
    if result.decision != "undecided" or not (c.n and b.n):
        return result
    detail = (
        f"undecided: the buckets bound the canary's p95 by {_ms(c.upper)} and the baseline's from below by "
        f"{_ms(b.lower)}; a pass needs the first ≤ {ratio:g} × the second"
    )
    lo, hi = _bucket(canary.latency, P95)
    if (lo, hi) == _bucket(baseline.latency, P95) and lo > 0 and not math.isinf(hi) and hi > ratio * lo:
        detail += (
            f". Both p95s lie in the ({lo * 1000:g}, {hi * 1000:g}] ms bucket, wider than ×{ratio:g}: "
            f"as the buckets stand no volume decides; finer buckets there, or policy.rollout.p95_ratio "
            f"≥ {hi / lo:.3g}, would"
        )
    return dataclasses.replace(result, detail=detail)


def _ms(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.0f} ms"


# --- the I/O: counts from Prometheus, and the step's report ----------------------------------


def _instant(ts: str) -> float:
    t = datetime.fromisoformat(ts)  # the rollout record's times are checked UTC timestamps
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def read_counts(
    client: PrometheusClient,
    query_map: QueryMap,
    release: str,
    since: str,
    *,
    at: float,
    cap_seconds: int | None = None,
) -> StepCounts:
    """`release`'s counts from `since` up to `at` (at most the last `cap_seconds`), every query
    evaluated at `at`. Counts are rounded (`increase()` extrapolates) and never negative."""
    from releasectl.monitoring.prometheus import metric_value, release_histogram

    seconds = int(at - _instant(since))
    notes: list[str] = []
    if cap_seconds is not None and seconds > cap_seconds:
        notes.append(
            f"--window: only the last {cap_seconds:,} s of the {seconds:,} s since {since} are read; the "
            "confidence sequences cover the traffic from the step's start, so looks at a sliding window "
            "are each valid alone, not together"
        )
        seconds = cap_seconds
    if seconds < 1:  # nothing to count yet; still ask, so a Prometheus that is down says so
        client.query("time()", at=at)
        return StepCounts(release, since, None, None, None, None, notes=notes)
    window = f"{seconds}s"
    queries: dict[str, str] = {}

    def value(metric: str) -> float | None:  # no data None, a negative count exit 3 (metric_value)
        v, queries[metric] = metric_value(client, query_map, metric, release, window, at=at)
        return v

    def count(metric: str) -> int | None:
        v = value(metric)
        return None if v is None else max(0, round(v))

    completion, errors = count("completion_requests"), count("errors")
    if errors is not None and completion is not None:
        errors = min(errors, completion)
    requests = abandoned = None
    if "abandon_rate" in query_map.queries:
        requests, rate = count("requests"), value("abandon_rate")
        if requests is not None and rate is not None:
            abandoned = min(requests, max(0, round(rate * requests)))
    latency, queries["latency_seconds_buckets"] = release_histogram(client, query_map, release, window, at=at)
    return StepCounts(
        release, since, window, completion, errors, latency, requests, abandoned, queries, notes
    )


def analyze_rollout_prometheus(root: Path, channel: str, url: str, window: str | None = None) -> StepReport:
    """Seed 004's gate on the current step's counts in Prometheus: the candidate's series against
    the series of the release the channel holds, each since its window of the step started."""
    from releasectl.channels.state import check_channel, read_state
    from releasectl.manifest.loader import load_manifest, release_path
    from releasectl.monitoring.prometheus import WINDOW_UNITS, PrometheusClient, parse_window, query_map_for
    from releasectl.rollout.steps import StepReport, active, margins_for, step_windows

    check_channel(channel)
    client = PrometheusClient(url)
    cap = None
    if window is not None:
        parse_window(window)
        cap = int(window[:-1]) * WINDOW_UNITS[window[-1]]
    state = read_state(root)
    record = active(state, channel)
    baseline_release = state.channels.get(channel)
    if baseline_release is None:
        raise BadInput(f"{channel} holds no release: the canary has no baseline to compare against")
    margins, margins_source = margins_for(root, record["release"])
    query_map = query_map_for(load_manifest(release_path(root, record["release"])))
    at = time.time()
    canary_since, baseline_since = step_windows(record)
    canary = read_counts(client, query_map, record["release"], canary_since, at=at, cap_seconds=cap)
    baseline = read_counts(client, query_map, baseline_release, baseline_since, at=at, cap_seconds=cap)
    analysis = analyze_counts(canary, baseline, margins, measured=measured_metrics(query_map))
    for side, counts in (("canary", canary), ("baseline", baseline)):
        analysis.notes.extend(f"{side} ({counts.release}): {note}" for note in counts.notes)
        if counts.range is not None and counts.completion_requests is None:
            analysis.notes.append(
                f"{side}: no series for {counts.release} in Prometheus since {counts.since}: no data, a hold"
            )
    source = {
        "prometheus": client.url,
        "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "window": window,
        "release_label": query_map.release_label,
        "not_measured": [r.metric for r in analysis.metrics if r.decision == "not_tracked"],
    }
    return StepReport(channel, baseline_release, record, canary, baseline, analysis, margins_source, source)
