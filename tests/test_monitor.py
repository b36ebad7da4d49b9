"""`releasectl monitor`: the three families, malformed lines, gzip, every manifest alert, and
auto-rollback end to end on a temp git releases repository (real channels code, real git)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import git

LOGS = Path(__file__).resolve().parent.parent / "examples" / "logs"


def write_log(path: Path, n: int = 200, seed: int = 1, **overrides: Any) -> Path:
    """A healthy log; `overrides` replace fields (a callable gets the record index)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        rec: dict[str, Any] = {
            "timestamp": f"2026-11-20T{i * 6 // n:02d}:{i % 60:02d}:00Z",
            "request_id": f"r{i}",
            "prompt": "Where is my order?",
            "output": "It ships tomorrow.",
            "prompt_tokens": 150,
            "tokens_generated": 20 + rng.randint(0, 10),
            "response_time_ms": rng.uniform(300, 900),
            "error": None,
            "user_satisfaction": rng.choice([4, 5]),
            "expected_format": None,
        }
        for k, v in overrides.items():
            rec[k] = v(i) if callable(v) else v
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prod_example_prints_three_panels_and_malformed_lines(cli, repo_root):
    r = cli("monitor", "--logs", str(LOGS / "prod.jsonl"), "--release", "v1.2", cwd=repo_root)
    assert r.code == 0, r.output
    for title in (
        "performance",
        "cost",
        "reliability",
        "latency_p95_ms",
        "cost_per_1k_tokens_usd",
        "error_rate",
    ):
        assert title in r.stdout
    assert "4 malformed line(s)" in r.stdout
    assert "18 (invalid JSON" in r.stdout and "1402 (response_time_ms: expected a number" in r.stdout


def test_json_matches_the_seed_pandas_snippet(cli, repo_root):
    r = cli(
        "monitor", "--logs", str(LOGS / "prod.jsonl"), "--release", "v1.2", "--format", "json", cwd=repo_root
    )
    doc = r.json()
    assert doc["malformed"]["count"] == 4
    assert [m["line"] for m in doc["malformed"]["lines"]] == [18, 405, 1204, 1402]
    # The seed's pandas computation over the same well-formed records.
    recs = []
    for line in (LOGS / "prod.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("response_time_ms"), float | int):
            recs.append(rec)
    rt = np.array([r["response_time_ms"] for r in recs])
    perf = doc["metrics"]["performance"]
    assert doc["requests"] == len(recs)
    assert perf["latency_p95_ms"]["value"] == pytest.approx(float(np.percentile(rt, 95)))
    assert perf["latency_avg_ms"]["value"] == pytest.approx(rt.mean())
    errs = sum(1 for r in recs if r["error"] not in (None, "none"))
    assert doc["metrics"]["reliability"]["error_rate"]["value"] == pytest.approx(errs / len(recs))
    sats = [r["user_satisfaction"] for r in recs if r["user_satisfaction"] is not None]
    assert doc["metrics"]["quality"]["avg_satisfaction"]["value"] == pytest.approx(np.mean(sats))
    assert doc["metrics"]["cost"]["source"] == "manifest infrastructure"
    assert doc["fired"] == [] and r.code == 0


def test_gzip_reads_the_same_as_plain(cli, tmp_path, repo_root):
    plain = write_log(tmp_path / "a.jsonl", 300)
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a = cli("monitor", "--logs", str(plain), "--format", "json", cwd=tmp_path).json()
    b = cli("monitor", "--logs", str(gz), "--format", "json", cwd=tmp_path).json()
    assert a["metrics"] == b["metrics"] and a["requests"] == 300


def test_cost_from_records_when_every_record_has_cost(cli, tmp_path):
    log = write_log(tmp_path / "c.jsonl", 100, tokens_generated=50, prompt_tokens=150, cost_usd=0.002)
    doc = cli("monitor", "--logs", str(log), "--format", "json", cwd=tmp_path).json()
    cost = doc["metrics"]["cost"]
    assert cost["source"] == "cost_usd per record"
    assert cost["cost_per_query_usd"]["value"] == pytest.approx(0.002)
    assert cost["cost_per_1k_tokens_usd"]["value"] == pytest.approx(0.01)
    assert doc["release"] is None  # no releases/ here: metrics only, alerts not evaluated


def test_malformed_json_outputs_count_against_format_compliance(cli, tmp_path):
    log = write_log(
        tmp_path / "f.jsonl", 100, expected_format="json", output=lambda i: '{"a": 1}' if i % 10 else '{"a": '
    )
    rel = cli("monitor", "--logs", str(log), "--format", "json", cwd=tmp_path).json()["metrics"][
        "reliability"
    ]
    assert rel["malformed_json_rate"]["value"] == pytest.approx(0.1)
    assert rel["format_compliance"]["value"] == pytest.approx(0.9)


ALERT_CASES = {
    "p95-latency": {"response_time_ms": 9000.0},
    "error-rate": {"error": lambda i: "upstream_5xx" if i % 2 else None},
    "satisfaction": {"user_satisfaction": 2},
    "format-compliance": {"expected_format": "json", "output": "not json"},
}


@pytest.mark.parametrize("alert", sorted(ALERT_CASES))
def test_each_alert_fires(cli, example_repo, tmp_path, alert):
    log = write_log(tmp_path / "bad.jsonl", 200, **ALERT_CASES[alert])
    r = cli("monitor", "--logs", str(log), "--release", "v1.2", "--format", "json", cwd=example_repo)
    assert r.code == 1, r.output
    assert r.json()["fired"] == [alert]


def test_cost_slo_fires_on_expensive_records(cli, example_repo, tmp_path):
    log = write_log(tmp_path / "cost.jsonl", 100, cost_usd=0.01)
    r = cli("monitor", "--logs", str(log), "--release", "v1.2", "--format", "json", cwd=example_repo)
    assert r.code == 1 and r.json()["fired"] == ["cost-per-1k-tokens"]


def test_healthy_log_fires_nothing_and_text_lists_alerts(cli, example_repo, tmp_path):
    log = write_log(tmp_path / "ok.jsonl", 200)
    r = cli("monitor", "--logs", str(log), cwd=example_repo)
    assert r.code == 0, r.output
    assert "✓ p95-latency" in r.stdout and "served by production" in r.stdout


def _channels(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / "releases" / "channels.yaml").read_text())["channels"]


def test_auto_rollback_end_to_end(cli, example_repo, tmp_path):
    before = _channels(example_repo)["production"]
    log = write_log(tmp_path / "slow.jsonl", 200, response_time_ms=12000.0)
    r = cli("monitor", "--logs", str(log), "--auto-rollback", "--format", "json", cwd=example_repo)
    assert r.code == 1, r.output
    doc = r.json()
    assert doc["rollback"]["status"] == "rolled back", doc["rollback"]
    after = _channels(example_repo)["production"]
    assert after != before and doc["rollback"]["from"] == before and doc["rollback"]["to"] == after
    event = json.loads((example_repo / "releases" / "history.jsonl").read_text().splitlines()[-1])
    assert event["action"] == "rollback" and "p95-latency" in event["reason"]
    assert "p95-latency" in git(example_repo, "log", "-1", "--format=%B")


def test_auto_rollback_skips_alerts_that_are_not_triggers(cli, example_repo, tmp_path):
    before = _channels(example_repo)["production"]
    log = write_log(tmp_path / "sad.jsonl", 200, user_satisfaction=1)
    r = cli("monitor", "--logs", str(log), "--auto-rollback", "--format", "json", cwd=example_repo)
    assert r.code == 1 and r.json()["fired"] == ["satisfaction"] and r.json()["rollback"] is None
    assert _channels(example_repo)["production"] == before


def test_trigger_without_auto_rollback_only_advises(cli, example_repo, tmp_path):
    log = write_log(tmp_path / "slow.jsonl", 100, response_time_ms=12000.0)
    r = cli("monitor", "--logs", str(log), cwd=example_repo)
    assert r.code == 1 and "rerun with --auto-rollback" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--logs", "missing.jsonl"], "log file not found"),
        (["--logs", "{log}", "--window", "soon"], "--window"),
        (["--logs", "{log}", "--release", "v9.9"], "v9.9"),
    ],
)
def test_bad_input_exits_2_without_traceback(cli, example_repo, tmp_path, args, message):
    log = write_log(tmp_path / "x.jsonl", 10)
    r = cli("monitor", *[a.replace("{log}", str(log)) for a in args], cwd=example_repo)
    assert r.code == 2 and message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    "content",
    [
        "nope\n{bad\n\n[]\n",
        '{"response_time_ms": "fast"}\n{"timeout": "yes"}\n',
        '{"timestamp": "9999-12-31T23:59:59Z"}\n',
        "",
        "\n\n  \n",
    ],
)
def test_a_log_without_one_record_is_no_data_not_an_all_clear(cli, tmp_path, content):
    log = tmp_path / "junk.jsonl"
    log.write_text(content)
    for fmt in ("text", "json"):
        r = cli("monitor", "--logs", str(log), "--format", fmt, cwd=tmp_path)
        assert r.code == 2, r.output
        assert str(log) in r.output and "no data" in r.output


def test_all_malformed_log_names_the_first_bad_lines(cli, tmp_path):
    log = tmp_path / "junk.jsonl"
    log.write_text("nope\n{bad\n\n[]\n")
    r = cli("monitor", "--logs", str(log), cwd=tmp_path)
    assert r.code == 2 and "line 1: invalid JSON" in r.output and "line 4: expected a JSON object" in r.output


def test_sketch_relative_error_bound():
    from releasectl.monitoring.sketch import QuantileSketch

    rng = np.random.default_rng(0)
    values = rng.lognormal(6.5, 0.8, 50_000)
    sketch = QuantileSketch(relative_error=0.01, exact_limit=1000)
    for v in values:
        sketch.add(float(v))
    assert not sketch.exact
    for q in (0.5, 0.95, 0.99):
        true = float(np.quantile(values, q, method="lower"))
        assert abs(sketch.quantile(q) - true) / true <= 0.011


def test_sketch_matches_the_ddsketch_package():
    """Our batch sketch and Datadog's `ddsketch` (the oracle) use the same bucket mapping and rank
    rule, so their estimates agree; ours ingests batches with numpy and can be restored from SQL
    totals, which is why it stays (benchmarks/sketch.py)."""
    from ddsketch import DDSketch

    from releasectl.monitoring.sketch import QuantileSketch

    rng = np.random.default_rng(1)
    values = np.concatenate([rng.lognormal(6.5, 0.8, 40_000), rng.uniform(1, 60_000, 2_000)])
    ours = QuantileSketch(relative_error=0.01, exact_limit=0)
    ours.add_many(values.tolist())
    dd = DDSketch(relative_accuracy=0.01)
    for v in values.tolist():
        dd.add(v)
    for q in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999):
        a, b = ours.quantile(q), dd.get_quantile_value(q)
        assert abs(a - b) / b < 1e-9, (q, a, b)
        true = float(np.quantile(values, q, method="lower"))
        assert abs(a - true) / true <= 0.01


def test_parallel_scan_equals_sequential(monkeypatch):
    """Large plain logs are split across processes; the merged result must match one pass."""
    from releasectl.monitoring import stats as stats_mod
    from releasectl.monitoring.families import CostBasis, compute_metrics, metrics_table

    one = stats_mod.scan(LOGS / "prod.jsonl", workers=1)
    monkeypatch.setattr(stats_mod, "PARALLEL_MIN_BYTES", 0)
    three = stats_mod.scan(LOGS / "prod.jsonl", workers=3)
    assert metrics_table(compute_metrics(three, CostBasis()), "none") == metrics_table(
        compute_metrics(one, CostBasis()), "none"
    )
    assert three.malformed.to_dict() == one.malformed.to_dict()
    assert (three.first_ts, three.last_ts, three.topics) == (one.first_ts, one.last_ts, one.topics)
    assert {k: (w.requests, w.satisfaction_n) for k, w in three.windows.items()} == {
        k: (w.requests, w.satisfaction_n) for k, w in one.windows.items()
    }
    assert sorted(three.sample_lengths) == sorted(one.sample_lengths)  # all 1,496 records fit the reservoir


# --- a damaged log is never an all-clear; special files; markup (issue 11) ------------------------


def _damaged_gzips(tmp_path: Path, plain: Path) -> list[Path]:
    raw = gzip.compress(plain.read_bytes(), mtime=0)
    cases = {
        "torn.jsonl.gz": raw[: len(raw) // 2],
        "crc.jsonl.gz": raw[:-8] + bytes([raw[-8] ^ 0xFF]) + raw[-7:],
        "size.jsonl.gz": raw[:-4] + b"\x00\x00\x00\x00",
        "no-trailer.jsonl.gz": raw[:-8],
        "flipped.jsonl.gz": raw[:60] + bytes([raw[60] ^ 0x5A]) + raw[61:],
        "head-only.jsonl": raw[:10],  # the name does not say gzip; the magic does
    }
    out = []
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        out.append(tmp_path / name)
    return out


@pytest.mark.parametrize("reader", ["python", "duckdb"])
def test_a_damaged_gzip_log_is_exit_2_naming_it(cli, tmp_path, reader):
    plain = write_log(tmp_path / "a.jsonl", 3000, response_time_ms=99_999)  # intact: alerts fire
    for log in _damaged_gzips(tmp_path, plain):
        for fmt in ("text", "json"):
            r = cli(
                "monitor",
                "--logs",
                str(log),
                "--format",
                fmt,
                cwd=tmp_path,
                env={"RELEASECTL_LOG_READER": reader},
            )
            assert r.code == 2, (log.name, r.output)
            assert str(log) in r.output and "gzip" in r.output and "internal error" not in r.output
        r = cli("monitor", "--logs", str(plain), "--baseline-logs", str(log), cwd=tmp_path)
        assert r.code == 2 and str(log) in r.output


@pytest.mark.parametrize(
    "stamp",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-05:00",
        "9998-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00",
        "-001-01-01T00:00:00Z",
        "99999-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-20T25:00:00Z",
        "2026-11-20",
        "2026-11-20T13:05:00.1234567Z",
        1732107900,
        1e308,
        True,
        ["2026-11-20T13:05:00Z"],
        {"t": 1},
    ],
)
def test_bad_timestamps_are_malformed_lines_not_internal_errors(cli, tmp_path, stamp):
    log = write_log(
        tmp_path / "ts.jsonl", 50, timestamp=lambda i: stamp if i in (7, 30) else "2026-11-20T10:00:00Z"
    )
    for reader in ("python", "duckdb"):
        doc = cli(
            "monitor",
            "--logs",
            str(log),
            "--format",
            "json",
            cwd=tmp_path,
            env={"RELEASECTL_LOG_READER": reader},
        ).json()
        assert doc["requests"] == 48, (reader, doc)
        assert [m["line"] for m in doc["malformed"]["lines"]] == [8, 31]
        assert all("timestamp" in m["reason"] for m in doc["malformed"]["lines"])


def test_extreme_timestamps_at_the_edges_still_read(cli, tmp_path):
    log = write_log(
        tmp_path / "edge.jsonl",
        40,
        timestamp=lambda i: ["1970-01-01T00:00:00Z", "9998-12-31T23:59:59Z"][i % 2],
    )
    for reader in ("python", "duckdb"):
        doc = cli(
            "monitor",
            "--logs",
            str(log),
            "--window",
            "1d",
            "--format",
            "json",
            cwd=tmp_path,
            env={"RELEASECTL_LOG_READER": reader},
        ).json()
        assert doc["requests"] == 40 and doc["malformed"]["count"] == 0, doc["malformed"]


def test_special_log_files_are_refused_without_hanging(cli, tmp_path):
    import os
    import threading

    fifo = tmp_path / "logs.jsonl"
    os.mkfifo(fifo)
    box: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: box.setdefault("r", cli("monitor", "--logs", str(fifo), cwd=tmp_path)), daemon=True
    )
    t.start()
    t.join(20)
    assert not t.is_alive(), "monitor hung on a FIFO"
    assert box["r"].code == 2 and "FIFO" in box["r"].output and str(fifo) in box["r"].output
    for path in ("/dev/zero", str(tmp_path)):
        r = cli("monitor", "--logs", path, cwd=tmp_path)
        assert r.code == 2 and path in r.output and "Traceback" not in r.output
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    r = cli("monitor", "--logs", str(loop), cwd=tmp_path)
    assert r.code == 2 and "loop" in r.output
    good = write_log(tmp_path / "good.jsonl", 50)
    r = cli("monitor", "--logs", str(good), "--baseline-logs", "/dev/zero", cwd=tmp_path)
    assert r.code == 2 and "/dev/zero" in r.output


@pytest.mark.parametrize(
    "value",
    [
        '{"response_time_ms": 1e400}',
        '{"tokens_generated": ' + "9" * 5000 + "}",
        "[" * 5000 + "]" * 5000,
        '{"topic": "\\ud800"}',
        '{"x": NaN}',
    ],
)
def test_extreme_values_are_malformed_lines(cli, tmp_path, value):
    log = write_log(tmp_path / "x.jsonl", 30)
    lines = log.read_text().splitlines()
    lines[4] = value
    log.write_text("\n".join(lines) + "\n")
    for reader in ("python", "duckdb"):
        doc = cli(
            "monitor",
            "--logs",
            str(log),
            "--format",
            "json",
            cwd=tmp_path,
            env={"RELEASECTL_LOG_READER": reader},
        ).json()
        assert doc["requests"] == 29 and [m["line"] for m in doc["malformed"]["lines"]] == [5], doc[
            "malformed"
        ]


def test_markup_and_emoji_in_user_text_print_literally(cli, tmp_path):
    log = write_log(tmp_path / "[bold red]x:100:.jsonl", 30)
    lines = log.read_text().splitlines()
    lines[2] = "{bad :100: [bold]json"
    log.write_text("\n".join(lines) + "\n")
    r = cli("monitor", "--logs", str(log), cwd=tmp_path)
    assert r.code == 0, r.output
    assert "[bold red]x:100:.jsonl" in r.stdout and "💯" not in r.stdout
    assert "3 (invalid JSON" in r.stdout


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_auto_rollback_on_a_rollouts_candidate_aborts_the_rollout(cli, example_repo, tmp_path, fmt):
    # v1.3 is rolling out to production (which holds v1.2); its canary traffic breaches a rollback
    # trigger: the rollback of a rollout is its abort (all traffic back to v1.2), never a move of
    # production to an older release.
    r = cli("rollout", "v1.3", "--channel", "production", "--force", "--reason", "plan", cwd=example_repo)
    assert r.code == 0, r.output
    log = write_log(tmp_path / "slow.jsonl", 200, response_time_ms=12000.0)
    r = cli(
        "monitor",
        "--logs",
        str(log),
        "--release",
        "v1.3",
        "--auto-rollback",
        "--format",
        fmt,
        cwd=example_repo,
    )
    assert r.code == 1, r.output
    if fmt == "json":
        assert r.json()["rollback"]["status"] == "aborted rollout", r.json()["rollback"]
    else:
        assert "aborted the rollout on production: all traffic back to v1.2" in r.stdout, r.stdout
    assert _channels(example_repo)["production"] == "v1.2"
    event = json.loads((example_repo / "releases" / "history.jsonl").read_text().splitlines()[-1])
    assert event["action"] == "rollout" and event["rollout"]["state"] == "aborted"
    assert event["trigger"]["source"] == "releasectl monitor" and "p95-latency" in event["reason"]
