"""The runtime pin, enforced against a really installed different engine version.

transformers 5.18.0 is installed from the package registry into a directory of its own and put
first on the replay's PYTHONPATH, so the replay runs with an engine version the manifest does not
pin (it pins 5.19.0, which the lock installs). Replay must refuse (exit 3) before loading a model,
then proceed with --allow-engine-drift and record the drift in run.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(1500)]

OTHER = "5.18.0"


@pytest.fixture(scope="module")
def other_transformers(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("transformers-" + OTHER)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), f"transformers=={OTHER}"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def replay(repo: Path, target: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(target)}
    args = [sys.executable, "-m", "releasectl", "replay", "releases/v1.3.yaml", "--limit", "1", "--out", str(out)]
    return subprocess.run([*args, *extra], cwd=repo, env=env, capture_output=True, text=True, timeout=900)


def test_replay_refuses_an_installed_engine_the_release_does_not_pin(example_repo, other_transformers, tmp_path):
    m = example_repo / "releases" / "v1.3.yaml"
    m.write_text(m.read_text().replace("max_tokens: 96", "max_tokens: 8"))
    refused = replay(example_repo, other_transformers, tmp_path / "a")
    assert refused.returncode == 3, refused.stderr
    assert f"pins hf 5.19.0, but {OTHER} is installed" in refused.stderr
    assert "--allow-engine-drift" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "a" / "run.json").exists()

    allowed = replay(example_repo, other_transformers, tmp_path / "b", "--allow-engine-drift", "--format", "json")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["drift"]["engine"] == {"engine": "hf", "pinned": "5.19.0", "installed": OTHER}
    assert run["runtime"]["transformers"] == OTHER and run["allow_engine_drift"] is True
