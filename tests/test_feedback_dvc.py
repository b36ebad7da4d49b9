"""The `feedback` stage of dvc.yaml under real DVC: `dvc repro feedback` runs `releasectl
feedback`, a second repro skips it, and changing the feedback params re-runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import git

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin, where the releasectl console script lives
ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "DVC_SITE_CACHE_DIR": "/tmp/dvc-site-cache",
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
}


def dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_dvc_repro_feedback_runs_then_skips(tmp_path):
    repo = tmp_path / "r"
    (repo / "examples" / "logs").mkdir(parents=True)
    shutil.copy2(REPO / "examples" / "logs" / "feedback.jsonl", repo / "examples" / "logs")
    shutil.copy2(REPO / "params.yaml", repo)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"feedback": stages["feedback"]}}))
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.check_update", "false")

    first = dvc(repo, "repro", "feedback")
    assert "Running stage 'feedback'" in first
    summary = repo / "data" / "feedback" / "summary.json"
    assert summary.is_file() and (repo / "data" / "feedback" / "sft_pairs.jsonl").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["feedback"]
    assert lock["params"]["params.yaml"]["feedback"]["hygiene"] == [
        "filter",
        "dedup",
        "bias_audit",
        "pii_scrub",
    ]

    second = dvc(repo, "repro", "feedback")
    assert "didn't change, skipping" in second and "Running stage" not in second

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["feedback"]["dedup"]["jaccard_threshold"] = 0.9
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert "Running stage 'feedback'" in dvc(repo, "repro", "feedback")
