"""The three metric families (performance, cost, reliability) plus quality, computed from
`LogStats`, and a rules-language resolver over them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasectl.gate.rules import MetricRef, Observation
from releasectl.monitoring.stats import LogStats

FAMILIES: dict[str, tuple[str, ...]] = {
    "performance": (
        "latency_avg_ms",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "tokens_per_request",
        "prompt_tokens_per_request",
    ),
    "cost": ("cost_per_query_usd", "cost_per_1k_tokens_usd"),
    "reliability": (
        "error_rate",
        "timeout_rate",
        "malformed_json_rate",
        "format_compliance",
        "malformed_lines",
    ),
    "quality": ("avg_satisfaction", "abandon_rate", "safety_incidents"),
}
RATE_COUNTS = {"error_rate": "errors", "timeout_rate": "timeouts", "abandon_rate": "abandoned"}


@dataclass(frozen=True)
class CostBasis:
    """How cost is computed: per-record `cost_usd` when every record carries it, else the fleet
    price over the measured throughput from the manifest (see docs/logs.md)."""

    gpu_hourly_usd: float | None = None
    tokens_per_second_per_gpu: float | None = None


def compute_metrics(s: LogStats, basis: CostBasis) -> dict[str, Observation]:
    """Every metric as an Observation (value, n, count), so rules and tables read one source."""
    n = s.requests
    obs: dict[str, Observation] = {}

    def put(
        name: str,
        value: float | None,
        count: int | None = None,
        reason: str | None = None,
        size: int | None = None,
    ) -> None:
        obs[name] = Observation(
            value,
            n=size if size is not None else n,
            count=count,
            inconclusive_reason=None if value is not None else (reason or "no data"),
        )

    lat = s.latency
    put("latency_avg_ms", lat.mean, size=lat.count, reason="no response_time_ms in the logs")
    for q, name in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")):
        put(name, lat.quantile(q), size=lat.count, reason="no response_time_ms in the logs")
    put("tokens_per_request", s.tokens_generated / n if n else None)
    put("prompt_tokens_per_request", s.prompt_tokens / n if n else None)
    total_tokens = s.tokens_generated + s.prompt_tokens
    cost_query: float | None
    cost_1k: float | None
    source = cost_source(s, basis)
    if source == "cost_usd per record":
        cost_query = s.cost_sum / n
        cost_1k = s.cost_sum / total_tokens * 1000 if total_tokens else None
    elif (
        source == "manifest infrastructure"
        and basis.gpu_hourly_usd is not None
        and basis.tokens_per_second_per_gpu
    ):
        # Generated tokens are what the GPUs are sized for (the capacity plan's convention).
        per_token = basis.gpu_hourly_usd / (basis.tokens_per_second_per_gpu * 3600)
        cost_1k = per_token * 1000
        cost_query = per_token * s.tokens_generated / n if n else None
    else:
        cost_query = cost_1k = None
    put("cost_per_query_usd", cost_query, reason="no cost_usd in the logs and no manifest infrastructure")
    put("cost_per_1k_tokens_usd", cost_1k, reason="no cost_usd in the logs and no manifest infrastructure")
    for name, attr in RATE_COUNTS.items():
        k = getattr(s, attr)
        put(name, k / n if n else None, count=k)
    put(
        "malformed_json_rate",
        s.malformed_json / s.expected_json if s.expected_json else 0.0 if n else None,
        count=s.malformed_json,
        size=s.expected_json,
    )
    put(
        "format_compliance",
        1 - s.malformed_json / s.expected_json if s.expected_json else 1.0 if n else None,
        count=s.expected_json - s.malformed_json,
        size=s.expected_json,
    )
    put("malformed_lines", float(s.malformed.count), count=s.malformed.count, size=n + s.malformed.count)
    put(
        "avg_satisfaction",
        s.satisfaction_sum / s.satisfaction_n if s.satisfaction_n else None,
        size=s.satisfaction_n,
        reason="no user_satisfaction in the logs",
    )
    put("safety_incidents", float(s.safety_incidents), count=s.safety_incidents)
    put("requests", float(n), count=n)
    return obs


def cost_source(s: LogStats, basis: CostBasis) -> str:
    """Where cost figures come from: every record's `cost_usd`, else the manifest, else nowhere."""
    if s.requests and s.cost_n == s.requests:
        return "cost_usd per record"
    if basis.gpu_hourly_usd is not None and basis.tokens_per_second_per_gpu:
        return "manifest infrastructure"
    return "none"


def metrics_table(obs: dict[str, Observation], source: str) -> dict[str, dict[str, Any]]:
    """Families -> metric -> JSON-ready numbers; `source` is `cost_source`'s answer."""
    out: dict[str, dict[str, Any]] = {}
    for family, names in FAMILIES.items():
        out[family] = {name: _obs_dict(obs[name]) for name in names}
    out["cost"]["source"] = source
    out["volume"] = {"requests": _obs_dict(obs["requests"])}
    return out


def _obs_dict(o: Observation) -> dict[str, Any]:
    d: dict[str, Any] = {"value": None if o.value is None else round(o.value, 8), "n": o.n}
    for k in ("count", "lower_ci", "upper_ci", "p_value", "inconclusive_reason"):
        v = getattr(o, k)
        if v is not None:
            d[k] = v
    return d


class LogResolver:
    """Resolves `name.field` (and `baseline.name.field` when baseline logs are given) for
    manifest alerts and monitor rules."""

    def __init__(
        self,
        current: dict[str, Observation],
        baseline: dict[str, Observation] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.current = current
        self.baseline = baseline
        self.namespace = namespace

    def resolve(self, ref: MetricRef) -> Observation:
        if ref.namespace == "baseline":
            if self.baseline is None:
                return Observation(None, inconclusive_reason="no baseline logs (pass --baseline-logs)")
            table = self.baseline
        elif ref.namespace in (None, self.namespace):
            table = self.current
        else:
            return Observation(
                None, inconclusive_reason=f"namespace '{ref.namespace}' is not available from logs"
            )
        o = table.get(ref.name)
        if o is None:
            return Observation(
                None,
                inconclusive_reason=f"unknown log metric '{ref.name}' (known: {', '.join(self.known_metrics())})",
            )
        return o

    def known_metrics(self) -> list[str]:
        return sorted(self.current)

    def known_slices(self) -> list[str]:
        return []

    def slice_regression(self, slice_name: str) -> Observation:
        return Observation(None, inconclusive_reason="logs have no suite slices")
