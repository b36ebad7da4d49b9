"""Real DVC: our md5 equals what `dvc add` writes, and `dvc repro` skips an unchanged release."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import git

from releasectl.manifest.digests import dvc_md5

REPO = Path(__file__).resolve().parent.parent
DVC = [sys.executable, "-m", "dvc"]
# Stages run `releasectl`, so the venv's bin directory must be on PATH even when the venv is
# not activated (CI runs .venv/bin/python directly).
ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "DVC_SITE_CACHE_DIR": "/tmp/dvc-site-cache",
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
}


def dvc(cwd: Path, *args: str, timeout: int = 300) -> str:
    proc = subprocess.run([*DVC, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    dvc(path, "init", "-q")
    dvc(path, "config", "core.analytics", "false")
    dvc(path, "config", "core.check_update", "false")
    return path


def test_dvc_md5_parity_for_a_directory_and_a_file(tmp_path):
    repo = init_repo(tmp_path / "r")
    data = repo / "data"
    (data / "nested" / "deeper").mkdir(parents=True)
    (data / "a.jsonl").write_text('{"x": 1}\n')
    (data / "nested" / "b.txt").write_bytes(b"binary \x00\xff\n")
    (data / "nested" / "deeper" / "c.csv").write_text("a,b\r\n1,2\r\n")  # CRLF: DVC 3 hashes raw bytes
    ours_dir = dvc_md5(data)  # before dvc add moves things into the cache
    (repo / "single.bin").write_bytes(os.urandom(4096))
    ours_file = dvc_md5(repo / "single.bin")
    dvc(repo, "add", "data", "single.bin")
    meta_dir = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]
    meta_file = yaml.safe_load((repo / "single.bin.dvc").read_text())["outs"][0]
    assert meta_dir["hash"] == "md5" and meta_dir["md5"].endswith(".dir")
    assert ours_dir == meta_dir["md5"]
    assert ours_file == meta_file["md5"]


def test_suite_digest_matches_dvc(tmp_path):
    repo = init_repo(tmp_path / "r")
    shutil.copytree(REPO / "suites" / "core", repo / "core")
    dvc(repo, "add", "core")
    assert yaml.safe_load((repo / "core.dvc").read_text())["outs"][0]["md5"] == dvc_md5(REPO / "suites" / "core")


@pytest.mark.model
def test_repro_skips_an_unchanged_release(tmp_path, example_repo):
    """`dvc repro` replays v1.2 once (1 case per slice on the real model), then skips it."""
    repo = example_repo
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["replay"]["limit"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    first = dvc(repo, "repro", "replay@v1.2", timeout=600)
    assert "Running stage 'replay@v1.2'" in first
    assert (repo / "runs" / "v1.2" / "run.json").is_file()
    second = dvc(repo, "repro", "replay@v1.2")
    assert "didn't change, skipping" in second
    assert "Running stage" not in second
    manifest = repo / "releases" / "v1.2.yaml"
    manifest.write_text(manifest.read_text().replace("seed: 1234", "seed: 1235"))
    status = dvc(repo, "status", "replay@v1.2")
    assert "modified:" in status and "releases/v1.2.yaml" in status
