"""`releasectl canary`: seed 001's canary rules through the rules language, the Kayenta-style
Mann-Whitney latency test, inconclusive on small N or short windows, and the canary.json shape
the gate reads."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

LOGS = Path(__file__).resolve().parent.parent / "examples" / "logs"
CANARY = [
    "--canary-logs",
    str(LOGS / "canary.jsonl.gz"),
    "--baseline-logs",
    str(LOGS / "canary_baseline.jsonl.gz"),
]


def write_log(path: Path, n: int, seed: int, slow: float = 1.0, **fields: Any) -> Path:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            rec = {
                "timestamp": f"2026-11-20T{i * 24 // n:02d}:{i % 60:02d}:00Z",
                "response_time_ms": rng.lognormvariate(6.0, 0.3) * slow,
                "tokens_generated": 80,
                "prompt_tokens": 180,
                "cost_usd": 0.0026,
                "abandoned": False,
                "safety_incident": False,
                **fields,
            }
            f.write(json.dumps(rec) + "\n")
    return path


def test_example_canary_promotes_and_writes_canary_json(cli, repo_root, tmp_path):
    out = tmp_path / "canary.json"
    r = cli("canary", "releases/v1.3.yaml", *CANARY, "--out", str(out), cwd=repo_root)
    assert r.code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1 and doc["verdict"] == "promote"
    for name in ("abandon_rate", "safety_incidents", "latency_p95_ms", "cost_per_1k_tokens_usd"):
        assert set(doc["metrics"][name]) >= {"value", "n", "lower_ci", "upper_ci", "count", "p_value"}
    assert (
        doc["metrics"]["abandon_rate"]["lower_ci"]
        < doc["metrics"]["abandon_rate"]["value"]
        < doc["metrics"]["abandon_rate"]["upper_ci"]
    )
    assert doc["metrics"]["safety_incidents"]["count"] == 0 and doc["metrics"]["requests"]["n"] > 5000
    rules = [r["rule"] for r in doc["rules"]]
    assert any(r.startswith("canary.latency_p95_ms.point <= 950") for r in rules)
    assert not any("success@1" in r for r in rules)  # offline gate rules are not canary rules
    assert "verdict: promote" in r.stdout


def test_gate_resolver_reads_canary_json(cli, repo_root, tmp_path):
    """The gate engineer's resolver reads exactly what we write."""
    from releasectl.gate.metrics import GateResolver
    from releasectl.gate.rules import MetricRef, evaluate_rules, parse_rules_file

    out = tmp_path / "canary.json"
    cli("canary", "releases/v1.3.yaml", *CANARY, "--out", str(out), cwd=repo_root)
    resolver = GateResolver.__new__(GateResolver)  # only the canary side is exercised here
    resolver.canary = json.loads(out.read_text())
    assert resolver._canary(MetricRef("canary", "latency_p95_ms")).value == pytest.approx(
        resolver.canary["metrics"]["latency_p95_ms"]["value"]
    )
    rules = [
        r
        for r in parse_rules_file(repo_root / "checklists/policies/staging_to_production.rules")
        if "canary." in r.text
    ]
    assert {o.outcome for o in evaluate_rules(rules, _CanaryOnly(resolver))} == {"pass"}


class _CanaryOnly:
    def __init__(self, gate):
        self.gate = gate

    def resolve(self, ref):
        return self.gate._canary(ref)


def prod_as_canary(cli, repo_root: Path, *extra: str):
    """Six hours and 1,500 requests of production logs: too little for a canary verdict."""
    logs = ["--canary-logs", str(LOGS / "prod.jsonl"), "--baseline-logs", str(LOGS / "baseline.jsonl.gz")]
    return cli("canary", "releases/v1.3.yaml", *logs, *extra, "--format", "json", cwd=repo_root)


def test_small_n_is_inconclusive_and_holds(cli, repo_root):
    r = prod_as_canary(cli, repo_root)
    doc = r.json()
    assert r.code == 1 and doc["verdict"] == "hold"
    assert all(o["outcome"] == "inconclusive" for o in doc["rules"])
    assert "need > 5,000" in doc["metrics"]["abandon_rate"]["inconclusive_reason"]


def test_short_window_is_inconclusive(cli, repo_root):
    r = prod_as_canary(cli, repo_root, "--min-requests", "100")
    assert (
        r.json()["verdict"] == "hold"
        and "window 6.0 h, need >= 24 h" in r.json()["metrics"]["latency_p95_ms"]["inconclusive_reason"]
    )


def small_canary(cli, repo_root: Path, can: Path, base: Path):
    """Canary on crafted logs, with minimums lowered to fit them (N > 1000 over 20 h)."""
    args = ["--canary-logs", str(can), "--baseline-logs", str(base), "--min-requests", "1000"]
    return cli("canary", "releases/v1.3.yaml", *args, "--min-hours", "20", "--format", "json", cwd=repo_root)


@pytest.mark.parametrize("slow, outcome", [(1.5, "fail"), (1.05, "pass")])
def test_rank_test_fails_only_beyond_the_margin(cli, repo_root, tmp_path, slow, outcome):
    base = write_log(tmp_path / "b.jsonl", 3000, 1)
    can = write_log(tmp_path / "c.jsonl", 3000, 2, slow=slow)
    r = small_canary(cli, repo_root, can, base)
    rank = next(o for o in r.json()["rules"] if "latency_mann_whitney" in o["rule"])
    assert rank["outcome"] == outcome, rank
    assert r.json()["verdict"] == ("block" if outcome == "fail" else "promote") and r.code == (
        1 if outcome == "fail" else 0
    )


def test_safety_incident_blocks(cli, repo_root, tmp_path):
    base = write_log(tmp_path / "b.jsonl", 2000, 1)
    can = write_log(tmp_path / "c.jsonl", 2000, 2)
    with can.open("a") as f:
        f.write(
            json.dumps(
                {"timestamp": "2026-11-20T23:59:00Z", "response_time_ms": 400, "safety_incident": True}
            )
            + "\n"
        )
    doc = small_canary(cli, repo_root, can, base).json()
    failed = [o["rule"] for o in doc["rules"] if o["outcome"] == "fail"]
    assert doc["verdict"] == "block" and failed == ["canary.safety_incidents.count == 0"]


def test_custom_rules_file_and_abandon_rate(cli, tmp_path):
    base = write_log(tmp_path / "b.jsonl", 2000, 1)
    can = write_log(tmp_path / "c.jsonl", 2000, 2, abandoned=True)
    rules = tmp_path / "canary.rules"
    rules.write_text("canary.abandon_rate.point <= 0.05\nsuccess@1.point >= 0.5\n")
    doc = cli(
        "canary",
        "--rules",
        str(rules),
        "--canary-logs",
        str(can),
        "--baseline-logs",
        str(base),
        "--min-requests",
        "1000",
        "--min-hours",
        "20",
        "--format",
        "json",
        cwd=tmp_path,
    ).json()
    assert [o["rule"] for o in doc["rules"]] == [
        "canary.abandon_rate.point <= 0.05",
        "canary.latency_mann_whitney.p_value >= 0.05",
    ]
    assert doc["rules"][0]["outcome"] == "fail" and doc["verdict"] == "block"


def test_no_rules_is_bad_input(cli, tmp_path):
    rules = tmp_path / "x.rules"
    rules.write_text("success@1.point >= 0.5\n")
    r = cli("canary", "--rules", str(rules), *CANARY, cwd=tmp_path)
    assert r.code == 2 and "no canary.* rules" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("which", ["--canary-logs", "--baseline-logs"])
def test_unreadable_or_empty_logs_are_exit_2_naming_the_file(cli, repo_root, tmp_path, which):
    import gzip
    import os

    good = write_log(tmp_path / "good.jsonl", 200, seed=1)
    raw = gzip.compress(good.read_bytes(), mtime=0)
    bad = {
        "empty.jsonl": b"",
        "junk.jsonl": b"nope\n{bad\n",
        "torn.jsonl.gz": raw[: len(raw) // 2],
        "crc.jsonl.gz": raw[:-8] + b"\xff\xff\xff\xff" + raw[-4:],
    }
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    paths = [fifo]
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    for path in paths:
        args = {"--canary-logs": str(good), "--baseline-logs": str(good), which: str(path)}
        r = cli("canary", "releases/v1.3.yaml", *[x for kv in args.items() for x in kv], cwd=repo_root)
        assert r.code == 2, (path.name, r.output)
        assert str(path) in r.output and "internal error" not in r.output


# --- the Prometheus path's latency test, on histogram buckets (no Prometheus needed) --------

# vLLM 0.32's bounds for vllm:e2e_request_latency_seconds (tests/fixtures/prometheus/).
VLLM_BOUNDS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
FINE_BOUNDS = tuple(round(0.5 * 1.05**i, 4) for i in range(80))  # 5 % apart, 0.5 s .. 24 s


def binned(samples, bounds=VLLM_BOUNDS):
    from bisect import bisect_left

    from releasectl.monitoring.prometheus import Histogram

    counts = [0] * (len(bounds) + 1)
    for x in samples:
        counts[bisect_left(bounds, x)] += 1
    cumulative, total = [], 0
    for c in counts:
        total += c
        cumulative.append(total)
    return Histogram((*bounds, float("inf")), tuple(cumulative))


def lognormal(rng, n, scale=1.0, mu=0.5):
    return [rng.lognormvariate(mu, 0.4) * scale for _ in range(n)]


def test_the_quantile_bracket_covers_the_true_p95():
    import math

    from releasectl.monitoring.canary import quantile_bracket

    true_p95 = math.exp(0.5 + 0.4 * 1.6448536)
    rng = random.Random(7)
    misses = 0
    for _ in range(400):
        lo, hi = quantile_bracket(binned(lognormal(rng, 300), FINE_BOUNDS), 0.95, 0.025)
        misses += not (lo <= true_p95 <= hi)
    assert misses / 400 <= 0.05  # two one-sided 2.5 % bounds


def test_the_histogram_test_rarely_fails_a_candidate_no_slower():
    from releasectl.monitoring.canary import histogram_latency_test

    rng = random.Random(11)
    outcomes = []
    for _ in range(300):
        doc = histogram_latency_test(
            binned(lognormal(rng, 400), FINE_BOUNDS), binned(lognormal(rng, 400), FINE_BOUNDS), margin=0.1
        )
        outcomes.append("inconclusive" if "inconclusive_reason" in doc else doc["p_value"] >= 0.05)
    assert outcomes.count(False) / 300 <= 0.05  # false fails: at most alpha
    assert outcomes.count(True) / 300 >= 0.5  # with 5 % buckets a 10 % margin mostly decides


def test_the_histogram_test_fails_a_slower_candidate_and_holds_where_buckets_straddle():
    from releasectl.monitoring.canary import histogram_latency_test

    rng = random.Random(3)
    # p95 about 1.9 s, in vLLM's (1.5 s, 2 s] bucket.
    base = binned(lognormal(rng, 2000, mu=0.0))
    slow = histogram_latency_test(binned(lognormal(rng, 2000, scale=2.0, mu=0.0)), base, margin=0.1)
    assert "inconclusive_reason" not in slow and slow["p_value"] < 1e-6
    same = histogram_latency_test(binned(lognormal(rng, 2000, mu=0.0)), base, margin=0.1)
    assert "buckets cannot decide" in same["inconclusive_reason"]  # vLLM's buckets are 25-100 % wide
    wide = histogram_latency_test(binned(lognormal(rng, 2000, mu=0.0)), base, margin=1.0)
    assert "inconclusive_reason" not in wide and wide["p_value"] >= 0.05
    few = histogram_latency_test(binned(lognormal(rng, 10)), base)
    assert few["inconclusive_reason"] == "fewer than 20 latencies on a side"
    missing = histogram_latency_test(None, base)
    assert missing["inconclusive_reason"].startswith("no data")
