"""`releasectl rollout analyze|advance --prometheus URL`: seed 004's step gate on Prometheus counts.

Two parts:

- pure tests of the count statistics (the beta-mixture CS on (errors, requests), the p95 bracketed
  from histogram buckets) and of the gate on counts, including simulations of repeated looks;
- the CLI against a real Prometheus (Debian's 2.42) scraping the recorded vLLM exposition replayed
  per release by tests/promstack.py's exporter (see there for what is real and what stands in:
  Prometheus is never mocked; the exporter replays what a real `vllm serve` exposed, because
  starting vLLM per test would cost minutes of CI). Every rollout is started by the test, so "since
  the step started" is a few seconds of the exporter's traffic.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from promstack import RecordedExporter, ReleaseTraffic, free_port, prometheus, wait_for_series
from runfactory import gate_document

from releasectl.manifest.loader import load_manifest
from releasectl.monitoring.prometheus import Histogram
from releasectl.rollout.analysis import Margins
from releasectl.rollout.prometheus import StepCounts, analyze_counts, histogram_quantile_cs
from releasectl.stats.sequential import (
    Interval,
    bernoulli_cs,
    bernoulli_cs_bounds,
    compare_rate_counts,
    decide_rates,
    quantile_cs,
)

# vLLM 0.32's e2e request latency buckets (seconds), as in the recorded exposition.
VLLM_BOUNDS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
VLLM_BOUNDS += (120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0, math.inf)


def histogram(latencies_s: np.ndarray, bounds: tuple[float, ...] = VLLM_BOUNDS) -> Histogram:
    cumulative = np.searchsorted(np.sort(latencies_s), np.array(bounds), side="right")
    return Histogram(tuple(bounds), tuple(int(c) for c in cumulative))


# --- the count CS for rates ------------------------------------------------------------------


def test_rate_counts_decide_like_the_array_path():
    fail = compare_rate_counts((300, 10_000), (1_000, 100_000), margin=0.005, higher_is_better=False)
    assert fail.decision == "fail" and fail.candidate.lower > fail.baseline.upper + 0.005
    ok = compare_rate_counts((500, 50_000), (1_000, 100_000), margin=0.005, higher_is_better=False)
    assert ok.decision == "pass" and ok.candidate.upper <= ok.baseline.lower + 0.005
    few = compare_rate_counts((1, 100), (10, 1_000), margin=0.005, higher_is_better=False)
    assert few.decision == "undecided"
    none = compare_rate_counts((0, 0), (10, 1_000), margin=0.005, higher_is_better=False)
    assert none.decision == "undecided" and none.candidate.n == 0
    # higher is better: task completion 2 points under the margin fails, equal passes
    assert (
        compare_rate_counts((8_500, 10_000), (90_000, 100_000), margin=0.02, higher_is_better=True).decision
        == "fail"
    )
    assert (
        compare_rate_counts((9_000, 10_000), (90_000, 100_000), margin=0.02, higher_is_better=True).decision
        == "pass"
    )
    # the one decision rule, on the beta-mixture CS at α/2 per stream
    c, b = bernoulli_cs(300, 10_000, 0.025), bernoulli_cs(1_000, 100_000, 0.025)
    assert decide_rates(c, b, margin=0.005, higher_is_better=False) == fail


def _looks(rng: np.random.Generator, p: float, per_look: int, streams: int, looks: int) -> np.ndarray:
    return np.cumsum(rng.binomial(per_look, p, size=(streams, looks)), axis=1)


def _decisions(kc, nc, kb, nb, margin: float, alpha: float) -> np.ndarray:
    """compare_rate_counts at every (stream, look): the bounds for all looks at once (the same
    `bernoulli_cs_bounds` it calls), then the one decision function on each."""
    lo_c, hi_c = bernoulli_cs_bounds(kc, np.broadcast_to(nc, kc.shape), alpha / 2)
    lo_b, hi_b = bernoulli_cs_bounds(kb, np.broadcast_to(nb, kb.shape), alpha / 2)
    out = np.empty(kc.shape, dtype=object)
    for idx in np.ndindex(kc.shape):
        c = Interval(float(lo_c[idx]), float(hi_c[idx]), kc[idx] / nc[idx[1]], int(nc[idx[1]]))
        b = Interval(float(lo_b[idx]), float(hi_b[idx]), kb[idx] / nb[idx[1]], int(nb[idx[1]]))
        out[idx] = decide_rates(c, b, margin=margin, higher_is_better=False).decision
    return out


def test_the_count_decision_stays_under_alpha_when_looked_at_every_hour():
    """48 hourly looks at cumulative counts (a 5 % canary: 200 requests an hour against 3,800),
    with the candidate exactly at the allowed bound (baseline + margin): the share of canaries
    wrongly failed, or wrongly passed, at *any* look stays ≤ α. The fixed-horizon z-test checked
    at the same looks exceeds α, which shows the simulation can see inflation."""
    rng = np.random.default_rng(2026)
    streams, looks, alpha, margin, base = 400, 48, 0.05, 0.005, 0.02
    nc, nb = 200 * np.arange(1, looks + 1), 3_800 * np.arange(1, looks + 1)
    kc = _looks(rng, base + margin, 200, streams, looks)
    kb = _looks(rng, base, 3_800, streams, looks)
    decided = _decisions(kc, nc, kb, nb, margin, alpha)
    false_fail = np.mean((decided == "fail").any(axis=1))
    false_pass = np.mean((decided == "pass").any(axis=1))
    assert false_fail <= alpha and false_pass <= alpha, (false_fail, false_pass)
    for s, t in [(0, 0), (3, 47), (17, 20)]:  # the vectorised bounds are compare_rate_counts's
        direct = compare_rate_counts(
            (int(kc[s, t]), int(nc[t])), (int(kb[s, t]), int(nb[t])), margin=margin, higher_is_better=False
        )
        assert direct.decision == decided[s, t]
    pc, pb = kc / nc, kb / nb
    se = np.sqrt(pc * (1 - pc) / nc + pb * (1 - pb) / nb)
    z_alarm = np.mean(((pc - pb - margin) / np.where(se > 0, se, np.inf) > 1.6449).any(axis=1))
    assert z_alarm > 2 * alpha, z_alarm
    # and it has power: 2 points worse is failed by the end in nearly every canary
    worse = _decisions(
        _looks(rng, base + 0.02, 200, 100, looks), nc, _looks(rng, base, 3_800, 100, looks), nb, margin, alpha
    )
    assert np.mean((worse == "fail").any(axis=1)) >= 0.95
    assert not (worse == "pass").any()


# --- the p95 from histogram buckets ----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=400),
    cut=st.lists(st.floats(0.01, 90.0, allow_nan=False), min_size=1, max_size=12, unique=True),
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_the_bucket_bracket_contains_the_exact_quantile_cs(data, cut, alpha):
    """Buckets only widen the log path's CS: each end moves out to a bucket bound."""
    xs = np.array(data)
    bounds = (*sorted(cut), math.inf)
    bucketed = histogram_quantile_cs(histogram(xs, bounds), 0.95, alpha)
    exact = quantile_cs(xs * 1000, 0.95, alpha)
    assert bucketed.n == exact.n == len(xs)
    # Bounds are in seconds and the CS in ms: compare up to the rounding of the × 1000.
    slack = 1e-9 * max(1.0, abs(exact.upper) if math.isfinite(exact.upper) else 1.0)
    assert bucketed.lower <= max(exact.lower, 0.0) + slack and bucketed.upper >= exact.upper - slack

    def a_bound(ms: float) -> bool:
        return any(math.isclose(ms / 1000, b, rel_tol=1e-12) for b in bounds if math.isfinite(b))

    assert bucketed.lower == 0.0 or a_bound(bucketed.lower)
    assert math.isinf(bucketed.upper) or a_bound(bucketed.upper)


def test_the_bucket_bracket_covers_the_true_p95_at_every_look():
    rng = np.random.default_rng(4)
    alpha, sigma, mu = 0.05, 0.5, math.log(1.2)
    true_p95 = math.exp(mu + sigma * 1.6448536) * 1000
    missed = 0
    for _ in range(150):
        xs = rng.lognormal(mu, sigma, 3_000)
        for n in range(300, 3_001, 300):  # ten looks at the growing histogram
            i = histogram_quantile_cs(histogram(xs[:n]), 0.95, alpha)
            if not i.lower <= true_p95 <= i.upper:
                missed += 1
                break
    assert missed / 150 <= alpha


def side(
    release: str,
    latencies: np.ndarray | None,
    errors: int | None,
    completion_requests: int | None,
    **kw,
) -> StepCounts:
    h = histogram(latencies) if latencies is not None else None
    return StepCounts(release, "2026-11-20T10:00:00Z", "3600s", completion_requests, errors, h, **kw)


def test_p95_decides_only_when_the_brackets_do():
    rng = np.random.default_rng(11)
    lat = rng.lognormal(math.log(1.7), 0.15, 100_000)  # p95 ≈ 2.2 s: inside vLLM's (2, 2.5] bucket
    same = side("v1.3", rng.lognormal(math.log(1.7), 0.15, 100_000), 0, 100_000)
    base = side("v1.2", lat, 0, 100_000)
    held = {m.metric: m for m in analyze_counts(same, base, Margins()).metrics}["latency_p95_ms"]
    assert held.decision == "undecided"
    assert "(2000, 2500] ms bucket, wider than ×1.2" in held.detail and "p95_ratio ≥ 1.25" in held.detail
    passed = {m.metric: m for m in analyze_counts(same, base, Margins(p95_ratio=1.3)).metrics}
    assert passed["latency_p95_ms"].decision == "pass"
    assert passed["latency_p95_ms"].canary.upper == 2500 and passed["latency_p95_ms"].baseline.lower == 2000
    slow = side("v1.3", lat * 3, 0, 100_000)
    failed = {m.metric: m for m in analyze_counts(slow, base, Margins()).metrics}["latency_p95_ms"]
    assert failed.decision == "fail" and failed.canary.lower > 1.2 * failed.baseline.upper


def test_the_gate_on_counts_leaves_out_what_the_source_does_not_measure():
    rng = np.random.default_rng(5)
    lat = rng.lognormal(math.log(1.7), 0.15, 50_000)
    canary, base = side("v1.3", lat, 500, 50_000), side("v1.2", lat, 500, 50_000)
    a = analyze_counts(canary, base, Margins(p95_ratio=1.3))
    decisions = {m.metric: m.decision for m in a.metrics}
    assert decisions == {
        "task_completion": "not_tracked",
        "latency_p95_ms": "pass",
        "error_rate": "pass",
        "satisfaction": "not_tracked",
    }
    assert a.outcome == "pass" and a.alpha_per_metric == 0.05 / 2  # α over the two measured
    assert all("not measured by this source" in m.detail for m in a.metrics if m.decision == "not_tracked")
    assert any("left out of the decision, which rests on latency_p95_ms, error_rate" in n for n in a.notes)
    # mapped abandonment measures task completion too: a third metric, α over three
    mapped = analyze_counts(
        side("v1.3", lat, 500, 50_000, requests=50_000, abandoned=5_000),
        side("v1.2", lat, 500, 50_000, requests=50_000, abandoned=1_000),
        Margins(p95_ratio=1.3),
        measured=("error_rate", "latency_p95_ms", "task_completion"),
    )
    assert mapped.outcome == "fail" and [m.metric for m in mapped.failed] == ["task_completion"]
    assert mapped.alpha_per_metric == pytest.approx(0.05 / 3)
    # nothing measured is a hold, never a pass; so is no series
    nothing = analyze_counts(canary, base, measured=())
    assert nothing.outcome == "hold" and "no metric of the gate is measured" in nothing.reason
    empty = analyze_counts(side("v1.3", None, None, None), base)
    assert empty.outcome == "hold"
    assert {m.metric: m.decision for m in empty.metrics}["error_rate"] == "undecided"
    assert "no series for error_rate of v1.3" in {m.metric: m.detail for m in empty.metrics}["error_rate"]


# --- the CLI on a real Prometheus ------------------------------------------------------------

# 2 points more 5xx: 6 answered + 1 404 + e errors per batch, e / (7 + e) = 0.02.
TWO_POINTS = 7 * 0.02 / 0.98
TWO_POINTS_FRACTION = TWO_POINTS / (6 + TWO_POINTS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """v1.2 serves production; v1.3 a healthy candidate; v1.4 answers 2 points more 5xx; v1.1 a
    healthy candidate on a trickle of traffic (2 % of the others'); v1.0 has no series at all.
    A recorded batch every 50 ms: 140 completion requests a second per busy release."""
    traffic = {
        "v1.2": ReleaseTraffic(),
        "v1.3": ReleaseTraffic(),
        "v1.4": ReleaseTraffic(error_fraction=TWO_POINTS_FRACTION),
        "v1.1": ReleaseTraffic(volume=0.02),
    }
    with (
        RecordedExporter(traffic, seconds_per_batch=0.05) as exporter,
        prometheus([f"127.0.0.1:{exporter.port}"], tmp_path_factory.mktemp("prom")) as url,
    ):
        wait_for_series(url, 'vllm:request_success_total{release="v1.1"}')
        yield url


def write_gate(repo: Path, release: str) -> None:
    digest = load_manifest(repo / "releases" / f"{release}.yaml").digest
    path = repo / "runs" / release / "gate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gate_document(release, stage="production", manifest_digest=digest)))


def start(repo: Path, release: str, *, policy: str | None = None) -> None:
    """Roll `release` out to production (v1.2) on a passing gate; `policy` goes under policy.rollout."""
    if policy:
        manifest = repo / "releases" / f"{release}.yaml"
        manifest.write_text(
            manifest.read_text().replace("policy:\n", f"policy:\n  rollout:\n    {policy}\n", 1)
        )
    write_gate(repo, release)
    r = run_cli("rollout", release, "--channel", "production", "--reason", "test", cwd=repo)
    assert r.code == 0, r.output


def analyze(repo: Path, url: str, *args: str):
    return run_cli("rollout", "analyze", "--prometheus", url, *args, "--format", "json", cwd=repo)


def looks_until_decided(repo: Path, url: str, *args: str, timeout: float = 120.0) -> list:
    """Analyse the step again and again (as an hourly job would, faster) until it decides."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = analyze(repo, url, *args)
        assert r.code in (0, 1), r.output
        seen.append(r)
        if r.json()["outcome"] != "hold":
            return seen
        time.sleep(1.0)
    raise AssertionError(f"still holding after {len(seen)} looks: {seen[-1].json()['reason']}")


def events(repo: Path) -> list[dict]:
    return [json.loads(x) for x in (repo / "releases" / "history.jsonl").read_text().splitlines() if x]


@pytest.mark.slow
def test_a_healthy_candidate_holds_at_first_then_passes_and_advances(example_repo, stack):
    # vLLM's p95 bucket here is (2, 2.5] s: a p95 ratio of 1.2 can never be shown by it (see the
    # pure test above), 1.3 can.
    start(example_repo, "v1.3", policy="p95_ratio: 1.3")
    seen = looks_until_decided(example_repo, stack)
    first, last = seen[0].json(), seen[-1].json()
    assert len(seen) >= 2 and first["outcome"] == "hold", first  # a few seconds of traffic cannot decide
    assert last["outcome"] == "pass" and seen[-1].code == 0, last
    decisions = {m["metric"]: m["decision"] for m in last["metrics"]}
    assert decisions == {
        "task_completion": "not_tracked",
        "latency_p95_ms": "pass",
        "error_rate": "pass",
        "satisfaction": "not_tracked",
    }
    assert last["source"]["prometheus"] == stack
    assert last["source"]["not_measured"] == ["task_completion", "satisfaction"]
    assert any("not measured by this source" in m["detail"] for m in last["metrics"])
    assert last["canary"]["release"] == "v1.3" and last["baseline"]["release"] == "v1.2"
    assert 'release="v1.3"' in last["canary"]["queries"]["errors"]
    assert (
        last["canary"]["range"].endswith("s")
        and f"[{last['canary']['range']}]" in last["canary"]["queries"]["errors"]
    )
    assert last["canary_requests"] >= 1_000 and last["metrics"][2]["canary"]["upper"] <= 0.005
    # --window caps what is read to the step's latest part, and says what that costs
    capped = analyze(example_repo, stack, "--window", "3s").json()
    assert capped["canary"]["range"] == "3s" and capped["source"]["window"] == "3s"
    assert capped["outcome"] == "hold" and capped["canary_requests"] < last["canary_requests"]
    assert any(
        "--window: only the last 3 s" in n and "valid alone, not together" in n for n in capped["notes"]
    )
    human = run_cli("rollout", "analyze", "--prometheus", stack, cwd=example_repo)
    assert human.code == 0 and "not measured by this source" in human.stdout, human.output
    assert f"Prometheus {stack}" in human.stdout and "not measured " in human.stdout
    adv = run_cli("rollout", "advance", "--prometheus", stack, "--format", "json", cwd=example_repo)
    assert adv.code == 0, adv.output
    doc = adv.json()
    assert doc["rollout"]["weight"] == 20 and doc["analysis"]["outcome"] == "pass"
    event = events(example_repo)[-1]
    assert event["rollout"]["analysis"]["error_rate"] == "pass"
    assert event["rollout"]["analysis"]["task_completion"] == "not_tracked"


@pytest.mark.slow
def test_a_trickle_of_canary_traffic_holds(example_repo, stack):
    start(example_repo, "v1.1")  # a healthy release, at 2 % of the baseline's traffic
    time.sleep(4)  # a few scrapes inside the step
    r = analyze(example_repo, stack)
    assert r.code == 1, r.output
    doc = r.json()
    assert doc["outcome"] == "hold" and 0 < doc["canary_requests"] < 500, doc
    error = next(m for m in doc["metrics"] if m["metric"] == "error_rate")
    assert error["decision"] == "undecided" and "confidence sequences still overlap" in error["detail"]


@pytest.mark.slow
def test_two_points_more_errors_fail_and_auto_abort_rolls_back(example_repo, stack):
    start(example_repo, "v1.4")
    before = (example_repo / "releases" / "history.jsonl").read_bytes()
    seen = looks_until_decided(example_repo, stack, "--auto-abort")
    doc = seen[-1].json()
    assert doc["outcome"] == "fail" and seen[-1].code == 1, doc
    assert all(s.json()["aborted"] is None for s in seen[:-1])  # holds write nothing
    assert [m["metric"] for m in doc["metrics"] if m["decision"] == "fail"] == ["error_rate"]
    assert doc["canary"]["errors"] > 0 and doc["baseline"]["errors"] == 0
    move = doc["aborted"]
    assert (move["action"], move["from"], move["to"]) == ("rollout", "v1.2", "v1.4")
    after = (example_repo / "releases" / "history.jsonl").read_bytes()
    assert after.startswith(before) and len(after.splitlines()) == len(before.splitlines()) + 1
    event = json.loads(after.splitlines()[-1])
    assert event["rollout"]["state"] == "aborted" and event["rollout"]["weight"] == 0
    trigger = event["trigger"]
    assert trigger["source"] == "rollout analyze --auto-abort" and trigger["prometheus"] == stack
    assert [f["metric"] for f in trigger["failed"]] == ["error_rate"]
    assert event["reason"].startswith("analysis failed: worse than allowed: error_rate")
    status = run_cli("rollout", "status", "--format", "json", cwd=example_repo).json()
    assert status["release"] == "v1.2" and status["rollout"] is None


@pytest.mark.slow
def test_no_series_holds_never_passes(example_repo, stack):
    r0 = run_cli("rollout", "v1.0", "--force", "--reason", "no gate", cwd=example_repo)
    assert r0.code == 0, r0.output
    time.sleep(2)
    r = analyze(example_repo, stack)
    assert r.code == 1, r.output
    doc = r.json()
    assert doc["outcome"] == "hold" and doc["canary_requests"] == 0
    assert any("no series for v1.0" in n for n in doc["notes"])
    assert {m["decision"] for m in doc["metrics"]} == {"undecided", "not_tracked"}


@pytest.mark.slow
def test_a_bad_query_override_is_exit_2_showing_the_query(example_repo, stack):
    manifest = example_repo / "releases" / "v1.3.yaml"
    broken = "sum(increase(nope{{sel}}[{w}]"
    manifest.write_text(
        manifest.read_text().replace(
            "\n  alerts:", f"\n  prometheus:\n    queries:\n      errors: '{broken}'\n  alerts:", 1
        )
    )
    start(example_repo, "v1.3")
    time.sleep(1.5)
    r = run_cli("rollout", "analyze", "--prometheus", stack, cwd=example_repo)
    assert r.code == 2, r.output
    assert 'increase(nope{release="v1.3"}[' in r.stderr and "Traceback" not in r.output
    manifest.write_text(manifest.read_text().replace("      errors: '", "      erors: '"))
    typo = run_cli("rollout", "analyze", "--prometheus", stack, cwd=example_repo)
    assert typo.code == 2 and "no Prometheus query maps to erors" in typo.stderr, typo.output


def test_prometheus_down_is_exit_3_naming_the_url(example_repo):
    assert run_cli("rollout", "v1.3", "--force", "--reason", "x", cwd=example_repo).code == 0
    url = f"http://127.0.0.1:{free_port()}"
    for verb in ("analyze", "advance"):
        r = run_cli("rollout", verb, "--prometheus", url, cwd=example_repo)
        assert r.code == 3 and url in r.stderr and "Traceback" not in r.output, r.output


def test_exactly_one_source(example_repo, tmp_path):
    assert run_cli("rollout", "v1.3", "--force", "--reason", "x", cwd=example_repo).code == 0
    log = tmp_path / "c.jsonl"
    log.write_text("{}\n")
    both = run_cli(
        "rollout",
        "analyze",
        "--prometheus",
        "http://127.0.0.1:9",
        "--canary-logs",
        str(log),
        cwd=example_repo,
    )
    assert both.code == 2 and "not both" in both.stderr
    stray = run_cli(
        "rollout",
        "analyze",
        "--canary-logs",
        str(log),
        "--baseline-logs",
        str(log),
        "--window",
        "1h",
        cwd=example_repo,
    )
    assert stray.code == 2 and "--window goes with --prometheus" in stray.stderr
    neither = run_cli("rollout", "analyze", cwd=example_repo)
    assert neither.code == 2 and "--prometheus URL" in neither.stderr
    adv = run_cli("rollout", "advance", cwd=example_repo)
    assert adv.code == 2 and "--prometheus URL" in adv.stderr
    bad = run_cli(
        "rollout", "analyze", "--prometheus", "http://127.0.0.1:9", "--window", "5", cwd=example_repo
    )
    assert bad.code == 2 and "--window" in bad.stderr
    scheme = run_cli("rollout", "analyze", "--prometheus", "127.0.0.1:9", cwd=example_repo)
    assert scheme.code == 2 and "http(s)://" in scheme.stderr
