"""The README's first command, `releasectl demo`, end to end on the embedded model (1 case per slice).

That a replay into a used directory starts over (the demo never resumes) is tested on the fake
engine in test_replay_runner.py."""

from __future__ import annotations

import json

import pytest

# Each step is its own process, so the model loads twice (one replay each); on a busy 2-core
# machine that alone can take minutes.
pytestmark = [pytest.mark.model, pytest.mark.timeout(1500)]


def test_demo_runs_the_release_pr_flow(cli, example_repo, tmp_path):
    report = tmp_path / "report.md"
    result = cli(
        "demo",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "runs"),
        "--report",
        str(report),
        "--format",
        "json",
        cwd=example_repo,
    )
    assert result.code == 0, result.output
    doc = result.json()
    assert (doc["candidate"], doc["baseline"]) == ("v1.3", "v1.2")
    assert [s["exit_code"] for s in doc["steps"]][1:3] == [0, 0]  # both replays ran
    gate = json.loads((tmp_path / "runs" / "gate.json").read_text())
    assert doc["verdict"] == gate["verdict"] in ("promote", "block", "hold")
    assert gate["baseline_release"] == "v1.2" and gate["stage"] == "staging"
    text = report.read_text()
    assert text.startswith("<!-- releasectl:gate release=v1.3 -->")
    assert "### Rules" in text and "```mermaid" in text
