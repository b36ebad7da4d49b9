"""Prometheus as a metrics source, against a real Prometheus scraping vLLM's recorded /metrics.

See tests/promstack.py for what is real (Prometheus, its scraping, storage and PromQL; vLLM's
exposition as a real vllm serve wrote it) and what stands in (an exporter replaying that
exposition, because starting vLLM per test would cost minutes of CI).
"""

from __future__ import annotations

import json
import time

import pytest
from promstack import RecordedExporter, ReleaseTraffic, prometheus, wait_for_series

from releasectl.errors import BadInput, EnvironmentFailure
from releasectl.monitoring.prometheus import (
    VLLM_QUERIES,
    PrometheusClient,
    QueryMap,
    parse_window,
    release_metrics,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    traffic = {"v1.2": ReleaseTraffic(), "v1.3": ReleaseTraffic(latency_factor=3.0, error_fraction=0.1)}
    with (
        RecordedExporter(traffic) as exporter,
        prometheus([f"127.0.0.1:{exporter.port}"], tmp_path_factory.mktemp("prom")) as url,
    ):
        wait_for_series(url, 'vllm:request_success_total{release="v1.3"}')
        time.sleep(6)  # a few scrapes, so rate() over 30s has points to work with
        yield url, traffic


def test_the_mapped_queries_give_the_recorded_serving_metrics(stack):
    url, _ = stack
    base = release_metrics(PrometheusClient(url), QueryMap(), "v1.2", "30s")
    assert base.has_data
    # The recorded batch: 6 completions, 118 generated tokens, latencies between 1 and 2.5 s.
    assert 1000 <= base.values["latency_p95_ms"] <= 2500
    assert base.values["tokens_per_request"] == pytest.approx(118 / 6, rel=0.05)
    assert base.values["error_rate"] == pytest.approx(0.0, abs=1e-9)
    assert base.values["truncation_rate"] == pytest.approx(4 / 6, rel=0.05)


def test_an_incident_shows_in_the_canary_series_only(stack):
    url, _ = stack
    client = PrometheusClient(url)
    base = release_metrics(client, QueryMap(), "v1.2", "30s")
    canary = release_metrics(client, QueryMap(), "v1.3", "30s")
    assert canary.values["latency_p95_ms"] > 2 * base.values["latency_p95_ms"]  # latency ×3 injected
    # 5xx injected at 10 % of the 6 answered completions of each batch; the recorded 404 counts too.
    errors = 6 * 0.1 / 0.9
    assert canary.values["error_rate"] == pytest.approx(errors / (6 + 1 + errors), rel=0.05)


def test_no_series_is_no_data_never_zero(stack):
    url, _ = stack
    missing = release_metrics(PrometheusClient(url), QueryMap(), "v9.9", "30s")
    assert not missing.has_data and set(missing.values.values()) == {None}


def test_a_bad_query_is_bad_input_showing_the_query(stack):
    url, _ = stack
    broken = QueryMap().with_overrides(
        {"latency_p95_ms": "histogram_quantile(0.95, sum by (le) (rate(x{{{sel}}}[{w}]"}
    )
    with pytest.raises(BadInput) as err:
        release_metrics(PrometheusClient(url), broken, "v1.2", "30s")
    assert "histogram_quantile(0.95" in (err.value.hint or "")
    with pytest.raises(BadInput, match="no Prometheus query maps to latecny_p95_ms"):
        QueryMap().with_overrides({"latecny_p95_ms": "up"})


def test_prometheus_down_is_an_environment_failure_naming_the_url():
    from promstack import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EnvironmentFailure, match=f"could not reach Prometheus at {url}"):
        PrometheusClient(url, timeout=2).query("up")


@pytest.mark.parametrize("window", ["", "5", "0m", "-1h", "1w", "10 m", "99999999h"])
def test_windows_are_checked(window):
    with pytest.raises(BadInput):
        parse_window(window)


def test_every_metric_has_a_query_with_a_selector_and_a_window():
    for name in VLLM_QUERIES:
        rendered = QueryMap().render(name, 'v1.3"}', "5m")
        assert 'release="v1.3\\"}"' in rendered and "[5m]" in rendered  # label values are escaped


def test_monitor_on_prometheus_evaluates_the_manifest_alerts(cli, example_repo, stack):
    url, _ = stack
    quiet = cli(
        "monitor",
        "--prometheus",
        url,
        "--release",
        "v1.2",
        "--window",
        "30s",
        "--format",
        "json",
        cwd=example_repo,
    )
    assert quiet.code == 0, quiet.output
    doc = quiet.json()
    outcomes = {a["name"]: a["outcome"] for a in doc["alerts"]}
    assert outcomes["p95-latency"] == "pass" and outcomes["error-rate"] == "pass"
    assert outcomes["satisfaction"] == "not measured"  # Prometheus has no satisfaction series
    no_series = cli(
        "monitor",
        "--prometheus",
        url,
        "--release",
        "v1.1",
        "--window",
        "30s",
        "--format",
        "json",
        cwd=example_repo,
    )
    assert no_series.code == 1 and no_series.json()["no_data"]  # no data is never an all-clear
    down = cli("monitor", "--prometheus", "http://127.0.0.1:9", "--release", "v1.2", cwd=example_repo)
    assert down.code == 3 and "http://127.0.0.1:9" in down.stderr


def test_an_incident_in_the_served_metrics_rolls_production_back(cli, example_repo, tmp_path):
    from conftest import git

    incident = {"v1.2": ReleaseTraffic(latency_factor=3.0, error_fraction=0.3)}
    with RecordedExporter(incident) as exporter, prometheus([f"127.0.0.1:{exporter.port}"], tmp_path) as url:
        wait_for_series(url, 'vllm:request_success_total{release="v1.2"}')
        time.sleep(6)
        result = cli(
            "monitor",
            "--prometheus",
            url,
            "--window",
            "30s",
            "--auto-rollback",
            "--format",
            "json",
            cwd=example_repo,
        )
    assert result.code == 1, result.output
    doc = result.json()
    assert {"p95-latency", "error-rate"} <= set(doc["fired"])
    assert doc["rollback"]["status"] == "rolled back" and doc["rollback"]["to"] == "v1.1"
    last = json.loads((example_repo / "releases" / "history.jsonl").read_text().splitlines()[-1])
    assert last["action"] == "rollback" and last["trigger"]["prometheus"] == url
    assert {a["name"] for a in last["trigger"]["alerts"]} >= {"p95-latency", "error-rate"}
    assert "rollback(production)" in git(example_repo, "log", "-1", "--format=%s")
