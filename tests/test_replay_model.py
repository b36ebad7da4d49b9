"""Replay on the real SmolLM2-135M (embedded GGUF): determinism, resume after SIGKILL, shards.

The model loads once per session (the hf engine caches it in-process); cases are few and
generations short (max_tokens 16, 1 case per slice, batches of 2), so this file takes about a
minute on 2 cores plus one extra model load in the SIGKILL subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from releasectl.manifest.loader import load_manifest
from releasectl.replay import Shard, run_replay
from releasectl.replay.merge import merge_runs
from releasectl.replay.runner import read_results

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def quick_repo(tmp_path_factory):
    """The example repo with v1.3 made quick: 16 new tokens, batches of 2."""
    from conftest import copy_releases_repo

    dest = copy_releases_repo(tmp_path_factory.mktemp("quick") / "repo")
    m = dest / "releases" / "v1.3.yaml"
    m.write_text(
        m.read_text().replace("max_tokens: 96", "max_tokens: 16").replace("batch_size: 8", "batch_size: 2")
    )
    return dest


@pytest.fixture(scope="module")
def loaded(quick_repo):
    return load_manifest(quick_repo / "releases" / "v1.3.yaml")


@pytest.fixture(scope="module")
def full_run(loaded, tmp_path_factory):
    return run_replay(loaded, tmp_path_factory.mktemp("full") / "run", limit=1)


def outputs(run_dir: Path) -> list[tuple]:
    return [
        (r["case_id"], r["output"], r["completion_tokens"], r["passed"])
        for r in read_results(run_dir / "results.jsonl")
    ]


def test_run_directory_format(full_run):
    run = json.loads((full_run.run_dir / "run.json").read_text())
    for key in (
        "release",
        "manifest_digest",
        "suite_digest",
        "engine",
        "device",
        "output_digest",
        "cases",
        "generation_seconds",
        "gpus",
        "gpu_hourly_usd",
    ):
        assert key in run
    assert run["cases"] == 7 and run["engine"]["name"] == "hf" and run["device"] == "cpu"
    rows = read_results(full_run.run_dir / "results.jsonl")
    assert [r["case_id"] for r in rows] == sorted(r["case_id"] for r in rows)
    for r in rows:
        assert set(r) >= {
            "case_id",
            "slice",
            "passed",
            "verifiers",
            "output",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "steps",
        }
        assert 0 < r["completion_tokens"] <= 16
        assert r["passed"] == all(v["passed"] for v in r["verifiers"].values())


def test_two_runs_give_identical_digests(loaded, full_run, tmp_path):
    again = run_replay(loaded, tmp_path / "again", limit=1)
    assert again.run["output_digest"] == full_run.run["output_digest"]
    assert outputs(tmp_path / "again") == outputs(full_run.run_dir)


def test_shards_merged_equal_one_run(loaded, full_run, tmp_path):
    for i in range(2):
        run_replay(loaded, tmp_path / f"shard{i}", limit=1, shard=Shard(i, 2))
    merged = merge_runs([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "merged")
    assert merged.run["output_digest"] == full_run.run["output_digest"]
    assert outputs(tmp_path / "merged") == outputs(full_run.run_dir)


def test_resume_after_sigkill_matches_an_uninterrupted_run(quick_repo, loaded, full_run, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "releasectl",
            "replay",
            "releases/v1.3.yaml",
            "--limit",
            "1",
            "--out",
            str(out),
        ],
        cwd=quick_repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 2:  # the first batch is on disk
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(read_results(results))
    assert 0 < done < 7, f"killed after {done} cases"
    assert not (out / "run.json").exists()
    resumed = run_replay(loaded, out, limit=1, resume=True)
    assert resumed.run["output_digest"] == full_run.run["output_digest"]
    assert outputs(out) == outputs(full_run.run_dir)


def test_resume_refuses_a_different_run(loaded, full_run, tmp_path):
    from releasectl.errors import BadInput

    (tmp_path / "d").mkdir()
    run_replay(loaded, tmp_path / "d", limit=1, shard=Shard(0, 2))
    with pytest.raises(BadInput, match="different run"):
        run_replay(loaded, tmp_path / "d", limit=1, resume=True)


def test_cli_check_determinism_and_summary(cli, quick_repo, tmp_path):
    result = cli(
        "replay",
        "releases/v1.3.yaml",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "r"),
        "--check-determinism",
        cwd=quick_repo,
    )
    assert result.code == 0, result.output
    assert "deterministic" in result.stdout and "success@1" in result.stdout
    assert "math_basic" in result.stdout


def test_changed_pins_are_refused_before_loading(cli, quick_repo, tmp_path):
    import shutil

    repo = tmp_path / "r"
    shutil.copytree(quick_repo, repo)
    (repo / "suites" / "core" / "slices" / "math_basic.jsonl").write_text("")
    result = cli("replay", "releases/v1.3.yaml", "--limit", "1", cwd=repo)
    assert result.code == 2
    assert "suite on disk is not the one" in result.stderr


def test_device_drift_is_refused_unless_allowed_and_recorded(cli, quick_repo, tmp_path):
    import shutil

    repo = tmp_path / "r"
    shutil.copytree(quick_repo, repo)
    m = repo / "releases" / "v1.3.yaml"
    m.write_text(m.read_text().replace("device: cpu", "device: NVIDIA H100 80GB HBM3"))
    refused = cli("replay", "releases/v1.3.yaml", "--limit", "1", "--out", str(tmp_path / "a"), cwd=repo)
    assert refused.code == 3
    assert (
        "pins runtime.device 'NVIDIA H100 80GB HBM3'" in refused.stderr
        and "--allow-device-drift" in refused.stderr
    )
    allowed = cli(
        "replay",
        "releases/v1.3.yaml",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "b"),
        "--allow-device-drift",
        "--format",
        "json",
        cwd=repo,
    )
    assert allowed.code == 0, allowed.output
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert (
        run["allow_device_drift"] is True
        and run["device"] == "cpu"
        and run["pinned_device"] == "NVIDIA H100 80GB HBM3"
    )


def test_ctrl_c_leaves_a_resumable_directory(quick_repo, loaded, full_run, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "releasectl",
            "replay",
            "releases/v1.3.yaml",
            "--limit",
            "1",
            "--out",
            str(out),
        ],
        cwd=quick_repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (
        (out / "results.jsonl").exists() and (out / "results.jsonl").read_text().count("\n") >= 2
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    resumed = run_replay(loaded, out, limit=1, resume=True)
    assert resumed.run["output_digest"] == full_run.run["output_digest"]
