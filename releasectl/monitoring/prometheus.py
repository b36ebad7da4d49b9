"""Prometheus as a metrics source: the serving metrics of a release, from the series vLLM exports.

One documented mapping from releasectl's metric names (the ones alerts, SLOs and canary rules use)
to PromQL over vLLM's metric names, version-pinned to vLLM 0.32's `vllm/v1/metrics/loggers.py`
and its API server's HTTP instrumentation (`http_requests_total`, prometheus-fastapi-instrumentator,
status codes grouped as 2xx/4xx/5xx). Not every stack uses vLLM's names, so a manifest or a flag
can override any query. A release's series are selected by a label naming it (`release="v1.3"` by
default: the pod label `releasectl/release` that `deploy render` sets, relabelled by Prometheus).

A query that returns no series gives *no data* (None), never zero: an alert on it is inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from releasectl.errors import BadInput, EnvironmentFailure

VLLM_VERSION = "0.32.0"
_LATENCY = "histogram_quantile({q}, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{{sel}}}[{w}]))) * 1000"
_TTFT = "histogram_quantile({q}, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{sel}}}[{w}]))) * 1000"
_COMPLETIONS = 'handler=~"/v1/(chat/)?completions"'

# releasectl metric -> PromQL template; {sel} is the release's label selector, {w} the window.
VLLM_QUERIES: dict[str, str] = {
    "latency_p50_ms": _LATENCY.replace("{q}", "0.5"),
    "latency_p95_ms": _LATENCY.replace("{q}", "0.95"),
    "latency_p99_ms": _LATENCY.replace("{q}", "0.99"),
    "ttft_p95_ms": _TTFT.replace("{q}", "0.95"),
    "requests": "sum(increase(vllm:request_success_total{{{sel}}}[{w}]))",
    # Requests the server failed (HTTP 5xx) over all completion requests it answered.
    "error_rate": (
        f'sum(increase(http_requests_total{{{{{{sel}},{_COMPLETIONS},status="5xx"}}}}[{{w}}]))'
        f" / sum(increase(http_requests_total{{{{{{sel}},{_COMPLETIONS}}}}}[{{w}}]))"
    ),
    "tokens_per_request": (
        "sum(increase(vllm:generation_tokens_total{{{sel}}}[{w}])) / sum(increase(vllm:request_success_total{{{sel}}}[{w}]))"
    ),
    "generation_tokens_per_s": "sum(rate(vllm:generation_tokens_total{{{sel}}}[{w}]))",
    "truncation_rate": (
        'sum(increase(vllm:request_success_total{{{sel},finished_reason="length"}}[{w}]))'
        " / sum(increase(vllm:request_success_total{{{sel}}}[{w}]))"
    ),
}


@dataclass(frozen=True)
class QueryMap:
    """Which PromQL answers which metric, and how a release's series are selected."""

    queries: dict[str, str] = field(default_factory=lambda: dict(VLLM_QUERIES))
    release_label: str = "release"
    extra_selector: str = ""  # e.g. 'namespace="llm"'

    def selector(self, release: str) -> str:
        escaped = release.replace("\\", "\\\\").replace('"', '\\"')
        parts = [f'{self.release_label}="{escaped}"'] + ([self.extra_selector] if self.extra_selector else [])
        return ",".join(parts)

    def render(self, metric: str, release: str, window: str) -> str:
        return self.queries[metric].format(sel=self.selector(release), w=window)

    def with_overrides(self, overrides: dict[str, str]) -> QueryMap:
        unknown = sorted(set(overrides) - set(self.queries))
        if unknown:
            raise BadInput(
                f"no Prometheus query maps to {', '.join(unknown)}",
                hint="known metrics: " + ", ".join(sorted(self.queries)),
            )
        return QueryMap({**self.queries, **overrides}, self.release_label, self.extra_selector)


WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> str:
    """A Prometheus range ('30s', '5m', '1h', '1d'); anything else is bad input."""
    unit = text[-1:] if text else ""
    if unit not in WINDOW_UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0 or len(text) > 8:
        raise BadInput(f"--window {text!r}: expected a duration like 30s, 5m, 1h or 1d")
    return text


class PrometheusClient:
    """Instant queries over Prometheus' HTTP API; 5xx and 429 are retried with the shared policy."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise BadInput(f"--prometheus {url!r}: expected an http(s):// URL")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str, *, at: float | None = None) -> float | None:
        """The query's single value now (or `at`), None when it selects no series or is NaN."""
        import httpx

        from releasectl.retry import RetriesExhausted, Retryable, RetryPolicy

        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at

        def attempt() -> httpx.Response:
            answer = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=self.timeout)
            if answer.status_code >= 500 or answer.status_code == 429:
                raise Retryable(f"HTTP {answer.status_code}")
            return answer

        try:
            response = RetryPolicy(attempts=3, base_delay=0.5, max_delay=10.0).run(attempt)
        except RetriesExhausted as e:
            raise EnvironmentFailure(f"Prometheus at {self.url} kept failing: {e}") from None
        except httpx.HTTPError as e:
            raise EnvironmentFailure(
                f"could not reach Prometheus at {self.url}: {type(e).__name__}: {e}",
                hint="check --prometheus and that the server is up",
            ) from None
        try:
            doc = response.json()
        except ValueError:
            raise EnvironmentFailure(
                f"Prometheus at {self.url} answered HTTP {response.status_code} with something that is not its JSON",
            ) from None
        if not isinstance(doc, dict):
            raise EnvironmentFailure(f"Prometheus at {self.url} answered an unexpected document")
        if doc.get("status") != "success":
            kind, message = doc.get("errorType"), doc.get("error")
            if kind in ("bad_data", "execution") or response.status_code in (400, 422):
                raise BadInput(
                    f"Prometheus refused the query ({kind}: {message})", hint=f"the query: {promql}"
                )
            raise EnvironmentFailure(f"Prometheus at {self.url} failed: {kind}: {message}")
        return _single_value(doc.get("data"), promql)


def _single_value(data: Any, promql: str) -> float | None:
    if not isinstance(data, dict):
        raise EnvironmentFailure(f"Prometheus answered no data object for {promql}")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        value = result[1] if isinstance(result, list) and len(result) == 2 else None
    elif kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            raise BadInput(
                f"the query returns {len(result)} series, expected one",
                hint=f"aggregate it (sum, histogram_quantile over sum by (le)): {promql}",
            )
        value = result[0].get("value", [None, None])[1] if isinstance(result[0], dict) else None
    else:
        raise BadInput(f"the query returns a {kind}, expected an instant vector or scalar", hint=promql)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise EnvironmentFailure(f"Prometheus answered a non-number {value!r} for {promql}") from None
    return None if math.isnan(number) or math.isinf(number) else number


@dataclass(frozen=True)
class ReleaseMetrics:
    release: str
    window: str
    values: dict[str, float | None]
    queries: dict[str, str]

    @property
    def has_data(self) -> bool:
        return any(v is not None for v in self.values.values())


def release_metrics(
    client: PrometheusClient, query_map: QueryMap, release: str, window: str, *, at: float | None = None
) -> ReleaseMetrics:
    """Every mapped metric of `release` over `window` (None where there is no data)."""
    queries = {name: query_map.render(name, release, window) for name in query_map.queries}
    return ReleaseMetrics(
        release, window, {name: client.query(q, at=at) for name, q in queries.items()}, queries
    )
