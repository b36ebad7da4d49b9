"""Prometheus as a hostile or broken server, and manifests that try to inject PromQL.

The servers here are small local fakes (http.server on 127.0.0.1, stopped when the test ends):
they answer what no real Prometheus would (drips, deep JSON, +Inf, negative counts, wrong types),
which a real Prometheus cannot be made to do. The happy paths run against a real Prometheus in
tests/test_prometheus.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from releasectl.errors import BadInput
from releasectl.monitoring.prometheus import VLLM_QUERIES, QueryMap

Answer = Callable[[str], tuple[int, bytes]]  # PromQL -> (HTTP status, body)


def vector(value: Any, labels: dict[str, str] | None = None) -> bytes:
    series = [{"metric": labels or {}, "value": [time.time(), value]}]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}}).encode()


EMPTY = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
LE = ["0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]


def buckets(counts: list[int]) -> bytes:
    result = [
        {"metric": {"le": le}, "value": [time.time(), str(c)]} for le, c in zip(LE, counts, strict=True)
    ]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


@contextmanager
def fake_prometheus(
    answer: Answer | None = None, *, drip: bool = False, authorization: list[str] | None = None
) -> Iterator[str]:
    """A fake Prometheus on 127.0.0.1 answering `answer(query)`, or dripping a byte every 0.5 s;
    yields its URL and stops (closing its connections) when the block ends. Each request's
    Authorization header is appended to `authorization`."""
    stop = threading.Event()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
            seen.append(query)
            if authorization is not None:
                authorization.append(self.headers.get("Authorization", ""))
            if drip:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                while not stop.is_set():
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        return
                    stop.wait(0.5)
                return
            assert answer is not None
            status, body = answer(query)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def with_policy(repo: Path, release: str, block: str) -> Path:
    manifest = repo / "releases" / f"{release}.yaml"
    manifest.write_text(
        manifest.read_text().replace("\n  alerts:", "\n  prometheus:\n" + block + "  alerts:", 1)
    )
    return manifest


# --- 3. policy.prometheus cannot inject PromQL ---------------------------------------------------

HOSTILE_POLICIES = {
    "selector closes the braces": (
        '    selector: \'namespace="llm"} or vector(0) or up{x="y"\'\n',
        "policy.prometheus.selector",
        "label matchers",
    ),
    "selector unquoted": ("    selector: 'namespace=llm'\n", "policy.prometheus.selector", "label matchers"),
    "selector on the release label": (
        "    selector: 'release=~\".*\"'\n",
        "policy.prometheus.selector",
        "release label",
    ),
    "release label matches every release": (
        "    release_label: 'release=~\".*\",x'\n",
        "policy.prometheus.release_label",
        "label name",
    ),
    "a str.format attribute": (
        "    queries:\n      requests: 'sum(x{{sel.__class__}}[{w}])'\n",
        "policy.prometheus.queries.requests",
        "'{sel.__class__}'",
    ),
    "a str.format width": (
        "    queries:\n      requests: 'sum(x{{sel}}[{w:>99999999999}])'\n",
        "policy.prometheus.queries.requests",
        "'{w:>99999999999}'",
    ),
    "a str.format conversion": (
        "    queries:\n      requests: 'sum(x{{sel}}[{w!r:>9999}])'\n",
        "policy.prometheus.queries.requests",
        "{w!r:>9999}",
    ),
    "no {sel}": (
        "    queries:\n      requests: 'sum(increase(x_total[{w}]))'\n",
        "policy.prometheus.queries.requests",
        "with {sel}",
    ),
    "old doubled braces": (
        "    queries:\n      requests: 'sum(increase(x_total{{{sel}}}[{w}]))'\n",
        "policy.prometheus.queries.requests",
        "doubled braces",
    ),
    "a typo in a key": (
        "    queries:\n      eror_rate: 'sum(x{{sel}}[{w}])'\n",
        "policy.prometheus.queries.eror_rate",
        "did you mean error_rate",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_POLICIES))
def test_validate_refuses_a_policy_that_would_inject_promql_at_file_line(cli, example_repo, case):
    block, field, why = HOSTILE_POLICIES[case]
    manifest = with_policy(example_repo, "v1.4", block)
    line = 1 + manifest.read_text().splitlines().index("  prometheus:") + 1
    r = cli("validate", "releases/v1.4.yaml", cwd=example_repo)
    assert r.code == 2, r.output
    assert f"releases/v1.4.yaml:{line}" in r.stderr or f"releases/v1.4.yaml:{line + 1}" in r.stderr, r.stderr
    assert field in r.stderr and why in r.stderr, r.stderr
    assert "Traceback" not in r.output and "internal error" not in r.output


def test_validate_accepts_templates_with_promql_braces_written_once(cli, example_repo):
    with_policy(
        example_repo,
        "v1.4",
        "    release_label: pod_release\n"
        '    selector: \'namespace="llm", job!~"test.*"\'\n'
        "    queries:\n"
        "      abandon_rate: 'sum(increase(x_total{{sel},finished_reason=\"abort\"}[{w}])) / sum(increase(x_total{{sel}}[{w}]))'\n"
        "      cost_per_1k_tokens_usd: 'max(cost_usd{{sel},kind=\"1k\"})'\n",
    )
    r = cli("validate", "releases/v1.4.yaml", "--format", "json", cwd=example_repo)
    assert r.code == 0, r.output


def test_the_built_in_queries_render_byte_identical_to_the_str_format_ones():
    # What vLLM's mapping sent before templates stopped going through str.format.
    q = QueryMap(extra_selector='namespace="llm"')
    assert q.render("error_rate", "v1.3", "5m") == (
        '(sum(increase(http_requests_total{release="v1.3",namespace="llm",handler=~"/v1/(chat/)?completions",'
        'status="5xx"}[5m])) or on() (0 * sum(increase(http_requests_total{release="v1.3",namespace="llm",'
        'handler=~"/v1/(chat/)?completions"}[5m])))) / sum(increase(http_requests_total{release="v1.3",'
        'namespace="llm",handler=~"/v1/(chat/)?completions"}[5m]))'
    )
    assert q.render("truncation_rate", "v1.3", "5m") == (
        'sum(increase(vllm:request_success_total{release="v1.3",namespace="llm",finished_reason="length"}[5m]))'
        ' / sum(increase(vllm:request_success_total{release="v1.3",namespace="llm"}[5m]))'
    )
    assert q.render("span_seconds", "v1.3", "5m") == (
        'time() - min(min_over_time(timestamp(vllm:e2e_request_latency_seconds_count{release="v1.3",'
        'namespace="llm"})[5m:]))'
    )
    for name in VLLM_QUERIES:
        rendered = QueryMap().render(name, "v1.3", "5m")
        assert "{{" not in rendered and "}}" not in rendered and "{sel}" not in rendered


def test_only_the_literal_placeholders_are_replaced_and_release_values_are_escaped():
    q = QueryMap().with_overrides({"requests": 'sum(x{{sel},a="{w}"}[{w}])'})
    assert q.render("requests", 'v"1\\\n', "5m") == 'sum(x{release="v\\"1\\\\\\n",a="5m"}[5m])'
    for bad in ("sum(x{{sel.__class__}}[{w}])", "sum(x{{sel}}[{w:>99999999999}])", "sum(x{{{sel}}}[{w}])"):
        with pytest.raises(BadInput):
            QueryMap().with_overrides({"requests": bad})
    with pytest.raises(BadInput, match="no Prometheus query maps to eror_rate") as err:
        QueryMap().with_overrides({"eror_rate": "x{{sel}}"})
    assert "did you mean error_rate" in (err.value.hint or "")


# --- 1. every --prometheus command renders its result in text as in JSON -------------------------


def serving(p95_ms: str = "300", error_rate: str = "0.0") -> Answer:
    """A plausible Prometheus for any release: 10,000 requests over a day, the given p95 and errors."""

    def answer(query: str) -> tuple[int, bytes]:
        if "sum by (le)" in query and "histogram_quantile" not in query:
            return 200, buckets([1000, 5000, 9000, 9800, 9950, 9990, 10000])
        if query.startswith("histogram_quantile(0.95") and "e2e" in query:
            return 200, vector(p95_ms)
        if query.startswith("histogram_quantile"):
            return 200, vector("250")
        if query.startswith("time()"):
            return 200, vector("100000")
        if 'status="5xx"' in query:
            return 200, vector(error_rate if query.startswith("(") else str(float(error_rate) * 10000))
        if "generation_tokens_total" in query:
            return 200, vector("100")
        if "finished_reason" in query:
            return 200, vector("0.01")
        return 200, vector("10000")

    return answer


SERVING_RULES = "canary.error_rate.point <= 0.05\ncanary.latency_p95_ms.point <= 5000\n"
CANARY = ["--window", "24h", "--min-requests", "20", "--min-hours", "0", "--margin", "1.5"]


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "serving.rules"
    path.write_text(SERVING_RULES)
    return str(path)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_monitor_on_an_empty_prometheus_says_no_data_in_either_format(cli, example_repo, fmt):
    with fake_prometheus(lambda q: (200, EMPTY)) as url:
        r = cli("monitor", "--prometheus", url, "--window", "1h", "--format", fmt, cwd=example_repo)
    assert r.code == 1, r.output  # no data is never an all-clear
    assert "internal error" not in r.output and "Traceback" not in r.output
    if fmt == "json":
        assert r.json()["no_data"] and not r.json()["has_data"]
    else:
        assert "no data" in r.stdout and "p95-latency" in r.stdout and url in r.stdout


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_monitor_auto_rollback_on_prometheus_reports_the_rollback_in_either_format(cli, example_repo, fmt):
    with fake_prometheus(serving(error_rate="0.5")) as url:
        r = cli("monitor", "--prometheus", url, "--auto-rollback", "--format", fmt, cwd=example_repo)
    assert r.code == 1, r.output
    assert "internal error" not in r.output
    if fmt == "json":
        assert r.json()["rollback"]["status"] == "rolled back" and "error-rate" in r.json()["fired"]
    else:
        assert "rolled back" in r.stdout and "production: v1.2 → v1.1" in r.stdout, r.stdout
        assert "error-rate" in r.stdout


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_canary_on_prometheus_renders_in_either_format(cli, example_repo, rules, fmt):
    with fake_prometheus(serving()) as url:
        r = cli(
            "canary",
            "--prometheus",
            url,
            "--release",
            "v1.3",
            *CANARY,
            "--rules",
            rules,
            "--format",
            fmt,
            cwd=example_repo,
        )
    with fake_prometheus(lambda q: (200, EMPTY)) as empty_url:
        empty = cli(
            "canary",
            "--prometheus",
            empty_url,
            "--release",
            "v1.3",
            *CANARY,
            "--rules",
            rules,
            "--format",
            fmt,
            cwd=example_repo,
        )
    assert r.code == 0, r.output
    assert empty.code == 1, empty.output
    for result in (r, empty):
        assert "internal error" not in result.output and "Traceback" not in result.output
    if fmt == "json":
        assert r.json()["verdict"] == "promote" and empty.json()["verdict"] == "hold"
    else:
        assert "verdict: promote" in r.stdout and "latency histogram test" in r.stdout
        assert "verdict: hold" in empty.stdout and "no series for release v1.3" in empty.stdout


# --- 2. one deadline for the whole request ------------------------------------------------------


def test_a_server_that_drips_bytes_is_cut_off_by_one_deadline_for_the_whole_answer():
    from releasectl.errors import EnvironmentFailure
    from releasectl.monitoring.prometheus import PrometheusClient

    with fake_prometheus(drip=True) as url:
        started = time.monotonic()
        with pytest.raises(
            EnvironmentFailure, match=r"did not answer within 1 s \(the whole answer\)"
        ) as err:
            PrometheusClient(url, timeout=1).query("up")
        assert time.monotonic() - started < 5  # each 0.5 s byte resets httpx's read timeout; this does not
        assert url in str(err.value) and "up" in (err.value.hint or "")


def test_canary_against_a_dripping_server_exits_3_instead_of_hanging(cli, example_repo, rules):
    with fake_prometheus(drip=True) as url:
        started = time.monotonic()
        r = cli(
            "canary", "--prometheus", url, "--release", "v1.3", *CANARY, "--rules", rules, cwd=example_repo
        )
        elapsed = time.monotonic() - started
    assert r.code == 3, r.output
    assert "did not answer within 10 s" in r.stderr and url in r.stderr
    assert elapsed < 30  # the first query's deadline ends the command: no retry of a timeout


# --- 4. the URL is checked and its password never shown; answers are parsed bounded ---------------

BAD_URLS = [
    "http://[::1",
    "http://a\r\nb:9090",
    "http://",
    "http://127.0.0.1:99999",
    "ftp://x",
    "http://h/?x=1",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_prometheus_url_is_bad_input_naming_the_option(cli, example_repo, url):
    for args in (
        ["canary", "--prometheus", url, "--release", "v1.3", "--window", "1h"],
        ["monitor", "--prometheus", url, "--release", "v1.2"],
        ["rollout", "analyze", "--prometheus", url],
    ):
        r = cli(*args, cwd=example_repo)
        assert r.code == 2, (args, r.output)
        assert "--prometheus" in r.stderr and "expected an http(s)://HOST[:PORT][/PATH] URL" in r.stderr
        assert "internal error" not in r.output and "Traceback" not in r.output


def test_userinfo_is_sent_as_basic_auth_and_never_printed_or_recorded(cli, example_repo, rules, tmp_path):
    import base64

    sent: list[str] = []
    out = tmp_path / "canary.json"
    with fake_prometheus(serving(error_rate="0.5"), authorization=sent) as url:
        secret_url = url.replace("http://", "http://ops:s3cret-pw@")
        c = cli(
            "canary",
            "--prometheus",
            secret_url,
            "--release",
            "v1.3",
            *CANARY,
            "--rules",
            rules,
            "--out",
            str(out),
            cwd=example_repo,
        )
        m = cli(
            "monitor", "--prometheus", secret_url, "--auto-rollback", "--format", "json", cwd=example_repo
        )
    down = cli(
        "monitor", "--prometheus", "http://ops:s3cret-pw@127.0.0.1:9", "--release", "v1.2", cwd=example_repo
    )
    assert c.code == 1 and m.code == 1 and down.code == 3, (c.output, m.output, down.output)
    assert sent and set(sent) == {"Basic " + base64.b64encode(b"ops:s3cret-pw").decode()}
    history = (example_repo / "releases" / "history.jsonl").read_text()
    for text in (c.output, out.read_text(), m.output, history, down.output):
        assert "s3cret-pw" not in text
    shown = url.replace("http://", "http://***@")
    assert json.loads(out.read_text())["prometheus"]["url"] == shown
    assert json.loads(history.splitlines()[-1])["trigger"]["prometheus"] == shown
    assert "http://***@127.0.0.1:9" in down.stderr


NOT_API_JSON = {
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "an HTML login page": b"<html><body>Login required</body></html>",
    "garbage": b"\x00\xff garbage {{{",
    "a list": b"[1, 2]",
    "data not an object": json.dumps({"status": "success", "data": [1, 2]}).encode(),
    "more than 32 MiB": b'{"status":"success","data":{"resultType":"vector","result":['
    + b" " * (33 << 20)
    + b"]}}",
}


@pytest.mark.parametrize("case", sorted(NOT_API_JSON))
def test_an_answer_that_is_not_prometheus_json_is_exit_3_naming_url_and_query(cli, example_repo, rules, case):
    body = NOT_API_JSON[case]
    with fake_prometheus(lambda q: (200, body)) as url:
        r = cli(
            "canary", "--prometheus", url, "--release", "v1.3", *CANARY, "--rules", rules, cwd=example_repo
        )
    assert r.code == 3, r.output
    assert url in r.stderr and "histogram_quantile(0.5" in r.stderr  # the first query run
    assert ("not its API's JSON" in r.stderr) or ("more than 33,554,432 bytes" in r.stderr)
    assert "internal error" not in r.output and "RecursionError" not in r.output


def test_a_redirect_is_not_followed_and_says_so(cli, example_repo, rules):
    def answer(query: str) -> tuple[int, bytes]:
        return 302, b""

    with fake_prometheus(answer) as url:
        r = cli(
            "canary", "--prometheus", url, "--release", "v1.3", *CANARY, "--rules", rules, cwd=example_repo
        )
    assert r.code == 3 and "HTTP 302" in r.stderr and "does not follow redirects" in r.stderr, r.output


# --- 5. what each answer means: +Inf, NaN, negative, decreasing, wrong types -----------------------


def test_what_each_value_means_per_metric():
    from releasectl.errors import EnvironmentFailure
    from releasectl.monitoring.prometheus import PrometheusClient, metric_value

    def value(answer: bytes, metric: str) -> float | None:
        with fake_prometheus(lambda q: (200, answer)) as url:
            return metric_value(PrometheusClient(url), QueryMap(), metric, "v1.3", "1h")[0]

    assert value(vector("+Inf"), "latency_p95_ms") == float("inf")  # beyond the largest bucket
    assert value(vector("+Inf"), "tokens_per_request") is None  # x/0: no denominator, no data
    assert value(vector("NaN"), "error_rate") is None  # 0/0: no requests, no data
    assert value(vector("0"), "errors") == 0.0
    for bad, metric in (
        (vector("-5"), "latency_p95_ms"),
        (vector("-Inf"), "errors"),
        (vector("-1"), "requests"),
    ):
        with pytest.raises(EnvironmentFailure, match="cannot be negative") as err:
            value(bad, metric)
        assert 'release="v1.3"' in (err.value.hint or "")
    for bad in (vector("fast"), vector(True)):
        with pytest.raises(EnvironmentFailure, match="non-number"):
            value(bad, "requests")


def answering(base: Answer, **overrides: bytes) -> Answer:
    """`base`, with the answer to queries starting with each override's key replaced."""
    prefixes = {"p95": "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e", "buckets": "sum by (le)"}

    def answer(query: str) -> tuple[int, bytes]:
        for key, body in overrides.items():
            if query.startswith(prefixes[key]) and 'release="v1.3"' in query:
                return 200, body
        return base(query)

    return answer


def test_a_canary_slower_than_the_largest_bucket_is_blocked_not_no_data(cli, example_repo, rules, tmp_path):
    from releasectl.contracts.canary import CanaryRecord

    slow = answering(serving(), p95=vector("+Inf"), buckets=buckets([0, 0, 0, 0, 0, 0, 10000]))
    out = tmp_path / "canary.json"
    with fake_prometheus(slow) as url:
        r = cli(
            "canary",
            "--prometheus",
            url,
            "--release",
            "v1.3",
            *CANARY,
            "--rules",
            rules,
            "--format",
            "json",
            "--out",
            str(out),
            cwd=example_repo,
        )
        text = cli(
            "canary", "--prometheus", url, "--release", "v1.3", *CANARY, "--rules", rules, cwd=example_repo
        )
    assert r.code == 1 and text.code == 1, r.output
    doc = r.json()  # valid JSON: no Infinity
    assert doc["verdict"] == "block"
    p95 = doc["metrics"]["latency_p95_ms"]
    assert "slower than the largest finite latency bucket (5000 ms)" in p95["inconclusive_reason"]
    assert "no series" not in p95["inconclusive_reason"] and p95["lower_ci"] == 5000
    outcome = {o["rule"]: o["outcome"] for o in doc["rules"]}
    assert outcome["canary.latency_histogram_test.p_value >= 0.05"] == "fail"  # every request > 5 s
    assert outcome["canary.latency_p95_ms.point <= 5000"] == "inconclusive"
    CanaryRecord.read(out)
    assert "verdict: block" in text.stdout


def test_monitor_fires_on_a_p95_beyond_the_largest_bucket_where_that_decides(cli, example_repo):
    slow = answering(serving(), p95=vector("+Inf"), buckets=buckets([0, 0, 0, 0, 0, 0, 10000]))
    unknown = answering(serving(), p95=vector("+Inf"), buckets=EMPTY)
    with fake_prometheus(slow) as url:
        fired = cli("monitor", "--prometheus", url, "--release", "v1.3", "--format", "json", cwd=example_repo)
        fired_text = cli("monitor", "--prometheus", url, "--release", "v1.3", cwd=example_repo)
    with fake_prometheus(unknown) as url:
        held = cli("monitor", "--prometheus", url, "--release", "v1.3", "--format", "json", cwd=example_repo)
    assert fired.code == 1 and fired_text.code == 1 and held.code == 1, fired.output
    alert = {a["name"]: a for a in fired.json()["alerts"]}["p95-latency"]
    assert alert["outcome"] == "fail" and alert["fired"]  # > 5000 ms fails <= 5000, whatever the value
    assert fired.json()["beyond_largest_bucket"]["current"] == {"latency_p95_ms": 5000.0}
    assert "latency_p95_ms: > 5000 ms, beyond the largest finite latency bucket" in fired_text.stdout
    alert = {a["name"]: a for a in held.json()["alerts"]}["p95-latency"]
    assert alert["outcome"] == "inconclusive" and "cannot say" in alert["detail"]  # no bound known
    assert "no series" not in alert["detail"]


@pytest.mark.parametrize(
    "case, answer, message",
    [
        ("negative p95", answering(serving(), p95=vector("-5")), "cannot be negative"),
        (
            "decreasing buckets",
            answering(serving(), buckets=buckets([10000, 5000, 100, 50, 10, 5, 1])),
            "latency histogram that cannot be",
        ),
        (
            "negative bucket",
            answering(serving(), buckets=buckets([-10, 0, 0, 0, 0, 0, 10])),
            "latency histogram that cannot be",
        ),
        (
            "result not a list",
            lambda q: (
                200,
                json.dumps(
                    {"status": "success", "data": {"resultType": "vector", "result": "lots"}}
                ).encode(),
            ),
            "not an instant vector",
        ),
        (
            "series without a value",
            lambda q: (
                200,
                json.dumps(
                    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
                ).encode(),
            ),
            "not an instant vector",
        ),
    ],
)
def test_server_data_that_cannot_be_is_exit_3_naming_the_query(
    cli, example_repo, rules, case, answer, message
):
    with fake_prometheus(answer) as url:
        r = cli(
            "canary", "--prometheus", url, "--release", "v1.3", *CANARY, "--rules", rules, cwd=example_repo
        )
    assert r.code == 3, (case, r.output)
    assert message in r.stderr and url in r.stderr and 'release="v1.3"' in r.stderr, r.stderr
    assert "the query:" in r.stderr and "internal error" not in r.output


def test_nan_is_no_data_never_a_pass(cli, example_repo, rules):
    with fake_prometheus(lambda q: (200, vector("NaN"))) as url:
        c = cli(
            "canary",
            "--prometheus",
            url,
            "--release",
            "v1.3",
            *CANARY,
            "--rules",
            rules,
            "--format",
            "json",
            cwd=example_repo,
        )
        m = cli("monitor", "--prometheus", url, "--release", "v1.3", "--format", "json", cwd=example_repo)
    assert c.code == 1 and c.json()["verdict"] == "hold", c.output
    assert m.code == 1 and not m.json()["has_data"] and m.json()["no_data"], m.output
