"""Prometheus as a metrics source: the serving metrics of a release, from the series vLLM exports.

One documented mapping from releasectl's metric names (the ones alerts, SLOs and canary rules use)
to PromQL over vLLM's metric names, version-pinned to vLLM 0.32's `vllm/v1/metrics/loggers.py`
and its API server's HTTP instrumentation (`http_requests_total`, prometheus-fastapi-instrumentator,
status codes grouped as 2xx/4xx/5xx). Not every stack uses vLLM's names, so a manifest or a flag
can override any query. A release's series are selected by a label naming it (`release="v1.3"` by
default: the pod label `releasectl/release` that `deploy render` sets, relabelled by Prometheus).

A query that returns no series gives *no data* (None), never zero: an alert on it is inconclusive.

`canary --prometheus` also reads the latency histogram's buckets (`latency_seconds_buckets`, a
vector by `le`, in seconds as vLLM exports them) to test the canary's p95 against the baseline's
(`releasectl.monitoring.canary.histogram_latency_test`), and metrics vLLM does not export
(`OPTIONAL_METRICS`: abandon rate, safety incidents, ...) can be mapped to a stack's own series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from releasectl.errors import BadInput, EnvironmentFailure, Problem
from releasectl.manifest.models import PROMETHEUS_METRICS, promql_template_problem

VLLM_VERSION = "0.32.0"
_LATENCY = (
    "histogram_quantile({q}, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{sel}}[{w}]))) * 1000"
)
_TTFT = (
    "histogram_quantile({q}, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{sel}}[{w}]))) * 1000"
)
_COMPLETIONS = 'handler=~"/v1/(chat/)?completions"'
_ANSWERED = "sum(increase(http_requests_total{{sel}," + _COMPLETIONS + "}[{w}]))"
_ERRORS = (
    "sum(increase(http_requests_total{{sel},"
    + _COMPLETIONS
    + ',status="5xx"}[{w}])) or on() (0 * '
    + _ANSWERED
    + ")"
)

# releasectl metric -> PromQL template. Filled by plain replacement: the literal {sel} becomes the
# release's label matchers, {w} the window; PromQL's own braces are written once (x{{sel}} is the
# selector x{...} around {sel}). Nothing else is substituted (no str.format).
VLLM_QUERIES: dict[str, str] = {
    "latency_p50_ms": _LATENCY.replace("{q}", "0.5"),
    "latency_p95_ms": _LATENCY.replace("{q}", "0.95"),
    "latency_p99_ms": _LATENCY.replace("{q}", "0.99"),
    "ttft_p95_ms": _TTFT.replace("{q}", "0.95"),
    "requests": "sum(increase(vllm:request_success_total{{sel}}[{w}]))",
    # Requests the server failed (HTTP 5xx) over all completion requests it answered. vLLM's HTTP
    # instrumentation creates the status="5xx" series at its first 5xx answer, so a server that
    # never failed has none: `or on() (0 * answered)` reads that as 0 errors while completion
    # requests are counted, and as no data when they are not.
    "error_rate": f"({_ERRORS}) / {_ANSWERED}",
    "tokens_per_request": (
        "sum(increase(vllm:generation_tokens_total{{sel}}[{w}])) / sum(increase(vllm:request_success_total{{sel}}[{w}]))"
    ),
    "generation_tokens_per_s": "sum(rate(vllm:generation_tokens_total{{sel}}[{w}]))",
    "truncation_rate": (
        'sum(increase(vllm:request_success_total{{sel},finished_reason="length"}[{w}]))'
        " / sum(increase(vllm:request_success_total{{sel}}[{w}]))"
    ),
    # The counts behind error_rate (its Wilson interval in canary.json).
    "errors": _ERRORS,
    "completion_requests": _ANSWERED,
    # How long the release's series have been scraped, up to the window: a canary that started
    # ten minutes ago has not shown a 24 h window, whatever --window says.
    "span_seconds": (
        "time() - min(min_over_time(timestamp(vllm:e2e_request_latency_seconds_count{{sel}})[{w}:]))"
    ),
    # A vector by `le` (seconds), not one value: the buckets the canary's latency test reads.
    "latency_seconds_buckets": (
        "sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{{sel}}[{w}]))"
    ),
}
VECTOR_METRICS = frozenset({"latency_seconds_buckets"})
# Metrics vLLM does not export, which a manifest may map to its stack's own series (an app-level
# counter of abandoned sessions or safety incidents, a cost gauge). Unmapped, a rule on one is
# "not measured by this source".
# The names a manifest may map are one list, PROMETHEUS_METRICS, where validate checks them.
OPTIONAL_METRICS = tuple(name for name in PROMETHEUS_METRICS if name not in VLLM_QUERIES)


@dataclass(frozen=True)
class QueryMap:
    """Which PromQL answers which metric, and how a release's series are selected."""

    queries: dict[str, str] = field(default_factory=lambda: dict(VLLM_QUERIES))
    release_label: str = "release"
    extra_selector: str = ""  # e.g. 'namespace="llm"'

    def selector(self, release: str) -> str:
        """The release's label matchers: its label's value as a PromQL string, then the extra ones."""
        escaped = release.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts = [f'{self.release_label}="{escaped}"'] + ([self.extra_selector] if self.extra_selector else [])
        return ",".join(parts)

    def render(self, metric: str, release: str, window: str) -> str:
        """`metric`'s query for `release` over `window`: the literal {sel} and {w} replaced, nothing else."""
        return self.queries[metric].replace("{sel}", self.selector(release)).replace("{w}", window)

    def scalar_metrics(self) -> list[str]:
        """The mapped metrics whose query gives one value (every one but the histogram buckets)."""
        return [name for name in self.queries if name not in VECTOR_METRICS]

    def with_overrides(self, overrides: dict[str, str]) -> QueryMap:
        """This map with `overrides` (metric -> template), checked as `releasectl validate` checks
        policy.prometheus.queries."""
        import difflib

        unknown = sorted(set(overrides) - set(PROMETHEUS_METRICS))
        if unknown:
            near = sorted({m for u in unknown for m in difflib.get_close_matches(u, PROMETHEUS_METRICS, n=2)})
            raise BadInput(
                f"no Prometheus query maps to {', '.join(unknown)}",
                hint=(f"did you mean {', '.join(near)}? " if near else "")
                + "known metrics: "
                + ", ".join(PROMETHEUS_METRICS),
            )
        for metric, template in overrides.items():
            problem = promql_template_problem(template)
            if problem:
                raise BadInput(f"the Prometheus query for {metric}: {problem}", hint=f"the query: {template}")
        return QueryMap({**self.queries, **overrides}, self.release_label, self.extra_selector)


def query_map_for(loaded: Any) -> QueryMap:
    """vLLM's mapping with the manifest's `policy.prometheus` overrides (queries, label, selector)."""
    spec = getattr(loaded.manifest.policy, "prometheus", None) if loaded is not None else None
    if spec is None:
        return QueryMap()
    base = QueryMap(release_label=spec.release_label, extra_selector=spec.selector)
    return base.with_overrides(dict(spec.queries))


WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> str:
    """A Prometheus range ('30s', '5m', '1h', '1d'); anything else is bad input."""
    unit = text[-1:] if text else ""
    if unit not in WINDOW_UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0 or len(text) > 8:
        raise BadInput(f"--window {text!r}: expected a duration like 30s, 5m, 1h or 1d")
    return text


MAX_ANSWER_BYTES = 32 << 20  # an instant query releasectl runs answers a few KiB


def checked_url(url: str) -> tuple[str, str, tuple[str, str] | None]:
    """--prometheus as (the base URL requests go to, without userinfo; the URL as messages and
    records show it, userinfo redacted; basic auth from the userinfo, if any). A URL that is
    not http(s)://HOST[:PORT][/PATH] is bad input naming the option."""
    from urllib.parse import unquote, urlsplit

    shown = redact_url(url)

    def bad(why: str) -> BadInput:
        return BadInput(
            f"--prometheus {shown!r}: {why}",
            [
                Problem(
                    why,
                    field="--prometheus",
                    expected="an http(s)://HOST[:PORT][/PATH] URL",
                    found=repr(shown),
                )
            ],
        )

    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise bad("the URL contains a space or a control character (CR, LF, ...)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise bad(f"not a URL ({e})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise bad("expected an http:// or https:// URL")
    if not parts.hostname:
        raise bad("the URL names no host")
    if port == 0:
        raise bad("port 0 is not a port a server listens on")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise bad("expected the server's base URL, without a ?query or #fragment")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    base = f"{parts.scheme.lower()}://{host}{f':{port}' if port is not None else ''}{parts.path}".rstrip("/")
    import httpx

    try:
        httpx.URL(base)
    except httpx.InvalidURL as e:
        raise bad(f"not a URL ({e})") from None
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    return base, base if auth is None else base.replace("://", "://***@", 1), auth


def redact_url(url: str) -> str:
    """`url` with any userinfo (user:password@) replaced by ***@: never printed or recorded."""
    import re

    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@", r"\1***@", url)


class PrometheusClient:
    """Instant queries over Prometheus' HTTP API; 5xx and 429 are retried with the shared policy."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._base, self.url, self._auth = checked_url(url)  # self.url: userinfo redacted, for messages
        self.timeout = timeout

    def query(self, promql: str, *, at: float | None = None) -> float | None:
        """The query's single value now (or `at`): None when it selects no series or is NaN
        (Prometheus' 0/0), ±inf as Prometheus answered it (see `metric_value`)."""
        return _single_value(self._data(promql, at), promql, self.url)

    def query_vector(self, promql: str, *, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """Every series of an instant-vector query as (labels, value), NaN series left out."""
        out = []
        for labels, number in _series(self._data(promql, at), promql, self.url, scalar_ok=False):
            if number is not None:
                out.append((labels, number))
        return out

    def _attempt(self, params: dict[str, Any]) -> tuple[int, bytes]:
        """One request, its answer read whole within `timeout` (`retry.within_deadline`: httpx's
        timeout bounds each read, so a server dripping a byte at a time would hold us forever).
        5xx and 429 are `Retryable`; a timeout is not retried: a query that slow is exit 3."""
        import httpx

        from releasectl.retry import DeadlineExceeded, Retryable, within_deadline

        http = httpx.Client(timeout=self.timeout, follow_redirects=False, auth=self._auth)

        def work() -> tuple[int, bytes]:
            with http.stream("GET", f"{self._base}/api/v1/query", params=params) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise EnvironmentFailure(
                            f"Prometheus at {self.url} answered more than {MAX_ANSWER_BYTES:,} bytes",
                            hint=f"no instant query releasectl runs returns that much; the query: {params['query']}",
                        )
                return response.status_code, bytes(body)

        try:
            status, body = within_deadline(
                work, self.timeout, abandon=http.close, name="releasectl-prometheus-query"
            )
        except DeadlineExceeded:
            raise EnvironmentFailure(
                f"Prometheus at {self.url} did not answer within {self.timeout:g} s (the whole answer)",
                hint=f"the query: {params['query']}",
            ) from None
        except httpx.HTTPError as e:
            http.close()
            raise EnvironmentFailure(
                f"could not reach Prometheus at {self.url}: {type(e).__name__}: {e}",
                hint="check --prometheus and that the server is up",
            ) from None
        http.close()
        if status >= 500 or status == 429:
            raise Retryable(f"HTTP {status}")
        return status, body

    def _data(self, promql: str, at: float | None) -> dict[str, Any]:
        from releasectl.retry import RetriesExhausted, RetryPolicy

        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        try:
            status, body = RetryPolicy(attempts=3, base_delay=0.5, max_delay=10.0).run(
                lambda: self._attempt(params)
            )
        except RetriesExhausted as e:
            raise EnvironmentFailure(
                f"Prometheus at {self.url} kept failing: {e}", hint=f"the query: {promql}"
            ) from None
        doc = self._document(status, body, promql)
        if doc.get("status") != "success":
            kind, message = doc.get("errorType"), doc.get("error")
            if kind in ("bad_data", "execution") or status in (400, 422):
                raise BadInput(
                    f"Prometheus refused the query ({kind}: {message})", hint=f"the query: {promql}"
                )
            raise EnvironmentFailure(f"Prometheus at {self.url} failed: {kind}: {message}")
        data = doc.get("data")
        if not isinstance(data, dict):
            raise self._not_api_json(status, "no data object", promql)
        return data

    def _document(self, status: int, body: bytes, promql: str) -> dict[str, Any]:
        """The answer as Prometheus' API JSON: parsed by safeio's bounded reader (nesting, digits,
        finite numbers), so a hostile answer is exit 3 saying what it is, never a RecursionError."""
        from releasectl.safeio import loads_json

        try:
            doc = loads_json(body, source=f"the answer of Prometheus at {self.url}")
        except BadInput as e:
            raise self._not_api_json(status, f"{e.message}; first bytes {body[:60]!r}", promql) from None
        if not isinstance(doc, dict):
            raise self._not_api_json(status, f"a JSON {type(doc).__name__}, not an object", promql)
        return doc

    def _not_api_json(self, status: int, found: str, promql: str) -> EnvironmentFailure:
        redirect = " (releasectl does not follow redirects: give the URL Prometheus itself answers on)"
        return EnvironmentFailure(
            f"Prometheus at {self.url} answered something that is not its API's JSON: HTTP {status}, {found}",
            hint=f"check --prometheus (the server's base URL, not a proxy's login page)"
            f"{redirect if 300 <= status < 400 else ''}; the query: {promql}",
        )


def _not_instant_vector(found: str, promql: str, url: str) -> EnvironmentFailure:
    return EnvironmentFailure(
        f"Prometheus at {url} answered something that is not an instant vector ({found})",
        hint=f"the server is not Prometheus' HTTP API, or a proxy rewrote its answer; the query: {promql}",
    )


def _series(
    data: dict[str, Any], promql: str, url: str, *, scalar_ok: bool
) -> list[tuple[dict[str, str], float | None]]:
    """The answer's series as (labels, value). A result type other than an instant vector (or a
    scalar, where `scalar_ok`) is the query's fault, bad input; a malformed answer is the server's."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and scalar_ok:
        if not (isinstance(result, list) and len(result) == 2):
            raise _not_instant_vector(f"a scalar result {str(result)[:60]!r}", promql, url)
        return [({}, _number(result[1], promql))]
    if kind != "vector":
        expected = "an instant vector or scalar" if scalar_ok else "an instant vector"
        raise BadInput(f"the query returns a {kind}, expected {expected}", hint=promql)
    if not isinstance(result, list):
        raise _not_instant_vector(f"a vector whose result is a {type(result).__name__}", promql, url)
    out = []
    for series in result:
        labels = series.get("metric") if isinstance(series, dict) else None
        value = series.get("value") if isinstance(series, dict) else None
        if not isinstance(labels, dict) or not (isinstance(value, list) and len(value) == 2):
            raise _not_instant_vector(f"a series {str(series)[:60]!r}", promql, url)
        out.append(({str(k): str(v) for k, v in labels.items()}, _number(value[1], promql)))
    return out


def _single_value(data: dict[str, Any], promql: str, url: str) -> float | None:
    series = _series(data, promql, url, scalar_ok=True)
    if not series:
        return None
    if len(series) > 1:
        raise BadInput(
            f"the query returns {len(series)} series, expected one",
            hint=f"aggregate it (sum, histogram_quantile over sum by (le)): {promql}",
        )
    return series[0][1]


def _number(value: Any, promql: str) -> float | None:
    """A sample value (Prometheus sends a string: "0.5", "NaN", "+Inf"); NaN is None."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise EnvironmentFailure(
            f"Prometheus answered a non-number {value!r}", hint=f"the query: {promql}"
        ) from None
    return None if math.isnan(number) else number


# Quantiles from histogram_quantile: +Inf is a real answer there (see metric_value).
QUANTILE_METRICS = frozenset({"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p95_ms"})


def metric_value(
    client: PrometheusClient,
    query_map: QueryMap,
    metric: str,
    release: str,
    window: str,
    *,
    at: float | None = None,
) -> tuple[float | None, str]:
    """`metric` of `release` over `window`, and the query run. What each answer means:

    - no series, or NaN (Prometheus' 0/0: a ratio over no requests, a quantile of no
      observations): None, no data;
    - +Inf from a quantile (QUANTILE_METRICS): its real answer, slower than the largest finite
      bucket bound, kept as math.inf; from any other metric it is x/0 (a ratio whose denominator
      is 0), no data;
    - a negative value or -Inf: no releasectl metric can be negative (counts, rates, ratios,
      latencies), so it is server data that cannot be, exit 3 naming the query.
    """
    promql = query_map.render(metric, release, window)
    value = client.query(promql, at=at)
    if value is not None and value < 0:
        raise EnvironmentFailure(
            f"Prometheus at {client.url} answered {value:g} for {metric} of {release}, which cannot be negative",
            hint=f"the query: {promql}",
        )
    if value is not None and math.isinf(value) and metric not in QUANTILE_METRICS:
        value = None
    return value, promql


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
    """Every mapped one-value metric of `release` over `window` (None where there is no data;
    `metric_value` says what each answer means)."""
    values: dict[str, float | None] = {}
    queries: dict[str, str] = {}
    for name in query_map.scalar_metrics():
        values[name], queries[name] = metric_value(client, query_map, name, release, window, at=at)
    return ReleaseMetrics(release, window, values, queries)


@dataclass(frozen=True)
class Histogram:
    """A cumulative histogram over a window: upper bounds ascending (the last one +Inf) and the
    number of observations at or below each, as whole counts."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.cumulative[-1]

    def above(self, threshold: float, *, certainly: bool) -> int:
        """Observations slower than `threshold`: those certainly slower (above the first bound at or
        past it), or those possibly slower (above the last bound at or below it)."""
        if certainly:
            j = next(i for i, b in enumerate(self.bounds) if b >= threshold)
            return self.total - self.cumulative[j]
        below = [i for i, b in enumerate(self.bounds) if b <= threshold]
        return self.total - (self.cumulative[below[-1]] if below else 0)


def release_histogram(
    client: PrometheusClient, query_map: QueryMap, release: str, window: str, *, at: float | None = None
) -> tuple[Histogram | None, str]:
    """The release's latency histogram over `window` (bounds in seconds) and its query; None
    without series. `increase()` extrapolates, so counts are rounded; a negative or decreasing
    count (beyond rounding) is exit 3."""
    promql = query_map.render("latency_seconds_buckets", release, window)
    rows = []
    for labels, value in client.query_vector(promql, at=at):
        le = labels.get("le")
        try:
            bound = float(le) if le is not None else None
        except ValueError:
            bound = None
        if bound is None or math.isnan(bound):
            raise BadInput(
                f"the latency histogram query gives a series without a numeric le label: {labels}",
                hint=promql,
            )
        rows.append((bound, value))
    if not rows:
        return None, promql
    rows.sort()
    if rows[-1][0] != math.inf:
        raise BadInput(
            'the latency histogram query gives no le="+Inf" bucket, so its total is unknown', hint=promql
        )
    cumulative: list[int] = []
    for bound, value in rows:
        count = round(value) if math.isfinite(value) else -1
        # increase() extrapolates each bucket alike, so counts stay monotone up to rounding (one
        # count); more is server data that cannot be, as is a negative or infinite count.
        if count < 0 or (cumulative and count < cumulative[-1] - 1):
            raise EnvironmentFailure(
                f"Prometheus at {client.url} answered a latency histogram that cannot be: {value:g} observations at or "
                f"below {bound:g} s"
                + (f" after {cumulative[-1]} at or below a smaller bound" if cumulative else ""),
                hint=f"cumulative bucket counts are never negative and never decrease; the query: {promql}",
            )
        cumulative.append(max(count, cumulative[-1] if cumulative else 0))
    return Histogram(tuple(b for b, _ in rows), tuple(cumulative)), promql
