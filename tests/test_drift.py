"""Drift (KS, PSI, Jensen-Shannon, TF-IDF) and reward collapse fire on the crafted example
windows and stay quiet on clean ones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from releasectl.monitoring.drift import detect_drift, detect_reward_collapse, psi
from releasectl.monitoring.stats import scan

LOGS = Path(__file__).resolve().parent.parent / "examples" / "logs"


@pytest.fixture(scope="module")
def baseline():
    return scan(LOGS / "baseline.jsonl.gz")


def _by_name(checks):
    return {c["name"]: c for c in checks}


def test_clean_window_is_quiet(baseline):
    checks = _by_name(detect_drift(scan(LOGS / "prod.jsonl"), baseline))
    assert set(checks) == {"output_length_ks", "output_length_psi", "input_topic_js", "input_tfidf_cosine"}
    assert not any(c["fired"] for c in checks.values()), checks
    assert checks["output_length_psi"]["level"] == "stable"


def test_drifted_window_fires_every_detector(baseline):
    checks = _by_name(detect_drift(scan(LOGS / "drifted.jsonl.gz"), baseline))
    assert all(c["fired"] for c in checks.values()), checks
    assert checks["output_length_ks"]["p_value"] < 0.01
    assert checks["output_length_psi"]["statistic"] >= 0.25
    assert {"crypto_wallet", "api_integration"} <= set(checks["input_topic_js"]["new_topics"])


def test_reward_collapse_fires_on_the_collapse_window():
    result = detect_reward_collapse(scan(LOGS / "reward_collapse.jsonl"))
    assert result["fired"] and result["windows"] == 12
    assert result["satisfaction"]["tau"] < 0 and result["satisfaction"]["p_value"] < 0.05
    assert result["proxies"]["reward_score"]["fired"] and result["proxies"]["ctr"]["tau"] > 0


def test_reward_collapse_quiet_on_healthy_production():
    result = detect_reward_collapse(scan(LOGS / "prod.jsonl"))
    assert result["windows"] == 6 and not result["fired"]


def test_too_few_windows_is_skipped_not_fired():
    result = detect_reward_collapse(scan(LOGS / "prod.jsonl", window=timedelta(days=1)))
    assert result.get("skipped") and not result["fired"]


def test_psi_identical_is_zero_and_shift_is_large():
    base = list(range(1000))
    assert psi(base, base) == pytest.approx(0.0, abs=1e-9)
    assert psi(base, [x + 500 for x in base]) > 0.25


def test_monitor_command_reports_drift_and_collapse(cli, tmp_path):
    r = cli(
        "monitor",
        "--logs",
        str(LOGS / "reward_collapse.jsonl"),
        "--baseline-logs",
        str(LOGS / "baseline.jsonl.gz"),
        "--format",
        "json",
        cwd=tmp_path,
    )
    doc = r.json()
    assert doc["reward_collapse"]["fired"]
    assert {d["name"] for d in doc["drift"] if d["fired"]} >= {"output_length_ks"}
    text = cli(
        "monitor", "--logs", str(LOGS / "reward_collapse.jsonl"), "--window", "2h", cwd=tmp_path
    ).stdout
    assert "reward collapse over 6 windows of 2h" in text
