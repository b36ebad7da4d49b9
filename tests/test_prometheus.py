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
    traffic = {
        "v1.2": ReleaseTraffic(),
        "v1.3": ReleaseTraffic(latency_factor=3.0, error_fraction=0.1),  # an incident
        "v1.4": ReleaseTraffic(),  # a healthy candidate
    }
    # A batch of the recorded 6 requests every 0.5 s: a few hundred requests in a 30 s window, what
    # the canary's p95 test needs (the baseline's p95 has an upper bound from 72 requests on).
    with (
        RecordedExporter(traffic, seconds_per_batch=0.5) as exporter,
        prometheus([f"127.0.0.1:{exporter.port}"], tmp_path_factory.mktemp("prom")) as url,
    ):
        wait_for_series(url, 'vllm:request_success_total{release="v1.3"}')
        time.sleep(6)  # a few scrapes, so rate() over 30s has points to work with
        yield url, traffic


@pytest.fixture
def busy_stack(stack):
    """The stack once it has served for 15 s (a few hundred requests per release)."""
    url, traffic = stack
    time.sleep(max(0.0, traffic["v1.2"].started + 15 - time.monotonic()))
    return stack


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
        {"latency_p95_ms": "histogram_quantile(0.95, sum by (le) (rate(x{{sel}}[{w}]"}
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
        assert 'release="v1.3\\"}"' in rendered  # label values are escaped
        assert "[5m]" in rendered or "[5m:]" in rendered  # a range, or a subquery over the window


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
            "--render",
            "vllm",
            "--render",
            "kubernetes",
            "--format",
            "json",
            cwd=example_repo,
        )
    assert result.code == 1, result.output
    doc = result.json()
    assert {"p95-latency", "error-rate"} <= set(doc["fired"])
    # The served config follows the rollback, in its commit: a GitOps controller applies v1.1.
    served = json.loads((example_repo / "deploy/rendered/production/vllm/serve.json").read_text())
    assert served["release"] == "v1.1"
    committed = git(example_repo, "show", "--name-only", "--format=", "HEAD").split()
    assert "deploy/rendered/production/vllm/serve.json" in committed and "releases/history.jsonl" in committed
    assert doc["rollback"]["status"] == "rolled back" and doc["rollback"]["to"] == "v1.1"
    last = json.loads((example_repo / "releases" / "history.jsonl").read_text().splitlines()[-1])
    assert last["action"] == "rollback" and last["trigger"]["prometheus"] == url
    assert {a["name"] for a in last["trigger"]["alerts"]} >= {"p95-latency", "error-rate"}
    assert "rollback(production)" in git(example_repo, "log", "-1", "--format=%s")


# --- canary --prometheus -------------------------------------------------------------------

# Rules that vLLM's series measure (the manifest's default canary rules also ask for abandon rate
# and safety incidents, which vLLM does not export: see the not-measured test below).
SERVING_RULES = """\
canary.error_rate.point <= 0.05
canary.latency_p95_ms.point <= 5000
"""
SMALL = ["--window", "30s", "--min-requests", "20", "--min-hours", "0"]


def canary(cli, repo, url, *args, rules=None, fmt="json"):
    extra = ["--rules", str(rules)] if rules else []
    return cli("canary", "--prometheus", url, *args, *SMALL, *extra, "--format", fmt, cwd=repo)


@pytest.fixture
def serving_rules(tmp_path):
    path = tmp_path / "serving.rules"
    path.write_text(SERVING_RULES)
    return path


def test_canary_on_prometheus_passes_a_healthy_candidate_and_blocks_an_incident(
    cli, example_repo, busy_stack, serving_rules, tmp_path
):
    from releasectl.contracts.canary import CanaryRecord

    url, _ = busy_stack
    # vLLM's latency buckets are 25-100 % wide; a 30 % margin is one they can resolve here.
    healthy = canary(cli, example_repo, url, "--release", "v1.4", "--margin", "0.3", rules=serving_rules)
    assert healthy.code == 0, healthy.output
    doc = healthy.json()
    assert doc["verdict"] == "promote" and doc["release"] == "v1.4" and doc["baseline_release"] == "v1.2"
    assert doc["baseline_release_source"] == "served by production"
    assert {r["outcome"] for r in doc["rules"]} == {"pass"}
    assert doc["rules"][-1]["rule"] == "canary.latency_histogram_test.p_value >= 0.05"
    test = doc["metrics"]["latency_histogram_test"]
    assert test["evidence"]["certainly_slower"] == 0 and test["value"] == pytest.approx(0.0, abs=0.05)
    assert 'release="v1.4"' in doc["prometheus"]["queries"]["latency_p95_ms"]
    assert 'release="v1.2"' in doc["prometheus"]["baseline_queries"]["latency_seconds_buckets"]
    assert doc["requests"] > 20 and doc["metrics"]["error_rate"]["upper_ci"] < 0.1
    # The healthy release has answered no 5xx, so (as on vLLM) it has no status="5xx" series yet:
    # that is 0 errors out of the answered requests, not "no data".
    assert doc["metrics"]["error_rate"]["value"] == 0.0 and doc["metrics"]["error_rate"]["count"] == 0
    out = tmp_path / "canary.json"
    written = cli(
        "canary",
        "--prometheus",
        url,
        "--release",
        "v1.4",
        "--margin",
        "0.3",
        *SMALL,
        "--rules",
        str(serving_rules),
        "--out",
        str(out),
        cwd=example_repo,
    )
    assert written.code == 0 and "verdict: promote" in written.stdout, written.output
    CanaryRecord.read(out)  # the strict canary.json contract the gate reads

    incident = canary(cli, example_repo, url, "--release", "v1.3", "--margin", "0.3", rules=serving_rules)
    assert incident.code == 1, incident.output
    doc = incident.json()
    failed = {r["rule"] for r in doc["rules"] if r["outcome"] == "fail"}
    assert doc["verdict"] == "block"
    assert failed == {  # 5xx at 10 %, latency x3: every rule fails
        "canary.error_rate.point <= 0.05",
        "canary.latency_p95_ms.point <= 5000",
        "canary.latency_histogram_test.p_value >= 0.05",
    }
    test = doc["metrics"]["latency_histogram_test"]
    assert test["p_value"] < 1e-6 and test["value"] > 1.0  # latency x3 injected


def test_canary_histogram_test_is_inconclusive_where_the_buckets_cannot_decide(
    cli, example_repo, busy_stack, serving_rules
):
    url, _ = busy_stack
    # Same traffic, default 10 % margin: both p95s lie in vLLM's (2 s, 2.5 s] bucket, which cannot
    # tell a 10 % shift from none. That is a hold (exit 1), not a pass.
    r = canary(cli, example_repo, url, "--release", "v1.4", rules=serving_rules)
    assert r.code == 1, r.output
    doc = r.json()
    assert doc["verdict"] == "hold"
    assert "the buckets cannot decide" in doc["metrics"]["latency_histogram_test"]["inconclusive_reason"]


def test_canary_without_series_is_never_a_pass(cli, example_repo, busy_stack, serving_rules):
    url, _ = busy_stack
    r = canary(cli, example_repo, url, "--release", "v1.1", rules=serving_rules)
    assert r.code == 1, r.output
    doc = r.json()
    assert doc["verdict"] == "hold" and {o["outcome"] for o in doc["rules"]} == {"inconclusive"}
    assert "no series for release v1.1" in doc["metrics"]["error_rate"]["inconclusive_reason"]


def test_canary_rules_vllm_does_not_measure_hold_until_the_manifest_maps_them(cli, example_repo, busy_stack):
    import yaml

    url, _ = busy_stack
    # The manifest's own rules (staging_to_production.rules) ask for abandon rate and safety
    # incidents, which vLLM does not export: not measured is not an all-clear.
    r = canary(cli, example_repo, url, "releases/v1.4.yaml", "--margin", "0.3")
    doc = r.json()
    assert r.code == 1 and doc["verdict"] in ("hold", "block")
    assert "not measured by this source" in doc["metrics"]["abandon_rate"]["inconclusive_reason"]
    # A per-manifest mapping: abandoned = requests vLLM finished as "abort" (client went away).
    manifest = example_repo / "releases" / "v1.4.yaml"
    data = manifest.read_text()
    abort = (
        'sum(increase(vllm:request_success_total{{sel},finished_reason="abort"}[{w}]))'
        " / sum(increase(vllm:request_success_total{{sel}}[{w}]))"
    )
    manifest.write_text(
        data.replace(
            "\n  alerts:",
            "\n  prometheus:\n    queries:\n      abandon_rate: "
            + yaml.safe_dump(abort, default_style='"').strip()
            + "\n  alerts:",
            1,
        )
    )
    r = canary(cli, example_repo, url, "releases/v1.4.yaml", "--margin", "0.3")
    doc = r.json()
    assert doc["metrics"]["abandon_rate"]["value"] == pytest.approx(0.0, abs=1e-9), r.output
    assert 'finished_reason="abort"' in doc["prometheus"]["queries"]["abandon_rate"]
    outcome = {o["rule"].split("#")[0].strip(): o["outcome"] for o in doc["rules"]}
    assert outcome["canary.abandon_rate.point <= 0.05"] == "pass"


def test_canary_bad_query_override_is_exit_2_showing_the_query(cli, example_repo, busy_stack, serving_rules):
    url, _ = busy_stack
    manifest = example_repo / "releases" / "v1.4.yaml"
    broken = "histogram_quantile(0.95, sum by (le) (rate(nope{{sel}}[{w}]"
    manifest.write_text(
        manifest.read_text().replace(
            "\n  alerts:", f"\n  prometheus:\n    queries:\n      latency_p95_ms: '{broken}'\n  alerts:", 1
        )
    )
    r = canary(cli, example_repo, url, "releases/v1.4.yaml", rules=serving_rules, fmt="text")
    assert r.code == 2, r.output
    assert 'rate(nope{release="v1.4"}[30s]' in r.stderr and "Traceback" not in r.output
    typo = manifest.read_text().replace("latency_p95_ms: '", "latecny_p95_ms: '")
    manifest.write_text(typo)
    r = canary(cli, example_repo, url, "releases/v1.4.yaml", rules=serving_rules, fmt="text")
    assert r.code == 2 and "no Prometheus query maps to latecny_p95_ms" in r.stderr


def test_canary_with_prometheus_down_is_exit_3_naming_the_url(cli, example_repo, serving_rules):
    from promstack import free_port

    url = f"http://127.0.0.1:{free_port()}"
    r = canary(cli, example_repo, url, "--release", "v1.4", rules=serving_rules, fmt="text")
    assert r.code == 3 and url in r.stderr, r.output


def test_canary_arguments_are_checked(cli, example_repo, serving_rules):
    both = cli("canary", "--prometheus", "http://127.0.0.1:9", "--canary-logs", "x", cwd=example_repo)
    assert both.code == 2 and "not both" in both.stderr
    itself = canary(
        cli, example_repo, "http://127.0.0.1:9", "--release", "v1.2", "--baseline-release", "v1.2", fmt="text"
    )
    assert itself.code == 2 and "the candidate itself" in itself.stderr
    unknown = canary(
        cli, example_repo, "http://127.0.0.1:9", "--release", "v9.9", rules=serving_rules, fmt="text"
    )
    assert unknown.code == 2, unknown.output
    unknown_baseline = canary(
        cli, example_repo, "http://127.0.0.1:9", "--release", "v1.3", "--baseline-release", "v9.9", fmt="text"
    )
    assert unknown_baseline.code == 2 and "unknown release 'v9.9'" in unknown_baseline.stderr
    stray = cli("canary", "--canary-logs", "a", "--baseline-logs", "b", "--window", "1h", cwd=example_repo)
    assert stray.code == 2 and "go with --prometheus" in stray.stderr


def test_the_rendered_argo_analysis_job_passes_only_a_healthy_candidate(
    cli, example_repo, busy_stack, serving_rules
):
    """The command `deploy render --target argo` puts in the AnalysisTemplate's Job, with its
    {{args.*}} filled as Argo fills them; Argo's Job provider reads exit 0 as success, any other
    exit as failure."""
    import re

    import yaml

    url, _ = busy_stack
    doc = cli("deploy", "render", "--target", "argo", "--stdout", "--format", "json", cwd=example_repo).json()
    found = {o["kind"]: o for o in yaml.safe_load_all(doc["files"]["argo/llm-production.yaml"])}
    template = found["AnalysisTemplate"]
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]
    container = job["containers"][0]
    defaults = {a["name"]: a.get("value") for a in template["spec"]["args"]}

    def run_job(release: str) -> int:
        # A test-sized window and minimums, and rules the recorded CPU latencies (2.4 s) can meet.
        args = {
            **defaults,
            "prometheus": url,
            "window": "30s",
            "min-requests": "20",
            "min-hours": "0",
            "margin": "0.3",
            "rules": str(serving_rules),
            "release": release,
            "baseline-release": "v1.2",
        }
        argv = [
            re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m[1]], part) for part in container["command"]
        ]
        assert argv[0] == "releasectl" and "{{" not in " ".join(argv)
        return cli(*argv[1:], cwd=example_repo).code  # workingDir: the releases repository

    assert run_job("v1.4") == 0  # healthy: the step advances
    assert run_job("v1.3") == 1  # the incident: the analysis fails and Argo aborts the rollout
    assert run_job("v1.1") == 1  # no series: never a pass
