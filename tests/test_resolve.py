"""`validate --resolve` against a Hub stand-in on 127.0.0.1 (real huggingface_hub client, real HTTP).

HF_ENDPOINT and HF_HUB_OFFLINE are read by huggingface_hub at import time, so the CLI runs in a
subprocess with them set, as a user's shell would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from fakehub import FakeHub

REPO = Path(__file__).resolve().parent.parent
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def hub_repo(tmp_path: Path, revision: str = SHA) -> Path:
    """A copy of the example repo whose v1.3 tokenizer is pinned on the Hub at `revision`."""
    dest = tmp_path / "repo"
    for part in ("releases", "checklists", "suites", "prompts", "adapters", "data", "training"):
        shutil.copytree(REPO / part, dest / part)
    for part in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / part, dest / part)
    path = dest / "releases" / "v1.3.yaml"
    text = path.read_text()
    start = text.index("tokenizer:")
    end = text.index("adapters:")
    text = text[:start] + f"tokenizer:\n  uri: hf://HuggingFaceTB/SmolLM2-135M-Instruct\n  revision: {revision}\n" + text[end:]
    path.write_text(text)
    return dest


def validate(repo: Path, env: dict[str, str]) -> tuple[int, dict | None, str]:
    full = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", **env}
    proc = subprocess.run([sys.executable, "-m", "releasectl", "validate", "releases/v1.3.yaml", "--resolve", "--format", "json"], cwd=repo, env=full, capture_output=True, text=True, timeout=120)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        doc = None
    return proc.returncode, doc, proc.stderr + proc.stdout


def hub_check(doc: dict) -> dict:
    item = doc["items"][0]
    return next(c for c in item["checks"] if c["id"] == "hub_revisions_exist")


def test_existing_revision_passes(tmp_path):
    repo = hub_repo(tmp_path)
    with FakeHub({"HuggingFaceTB/SmolLM2-135M-Instruct": {SHA}}) as hub:
        code, doc, err = validate(repo, {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"})
    assert code == 0, err
    assert hub_check(doc)["status"] == "pass"
    assert any(f"/revision/{SHA}" in p for p in hub.requests)


def test_unknown_revision_fails_item_1(tmp_path):
    repo = hub_repo(tmp_path, OTHER)
    with FakeHub({"HuggingFaceTB/SmolLM2-135M-Instruct": {SHA}}) as hub:
        code, doc, _ = validate(repo, {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"})
    assert code == 1
    check = hub_check(doc)
    assert check["status"] == "fail"
    assert f"revision {OTHER} does not exist" in check["message"]
    assert check["problems"][0]["field"] == "tokenizer"


def test_hub_down_exits_3_with_a_clear_message(tmp_path):
    repo = hub_repo(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    code, _, err = validate(repo, {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "0"})
    assert code == 3
    assert f"could not reach the Hugging Face Hub at http://127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_hub_5xx_exits_3(tmp_path):
    repo = hub_repo(tmp_path)
    with FakeHub({}, fail_with=503) as hub:
        code, _, err = validate(repo, {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"})
    assert code == 3
    assert "HTTP 503" in err
    assert len(hub.requests) == 3  # retried


def test_offline_checks_the_local_cache(tmp_path):
    repo = hub_repo(tmp_path)
    cache = tmp_path / "hf-cache"
    snap = cache / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text(SHA)
    (snap / "blobs").mkdir()
    blob = snap / "blobs" / ("a" * 64)
    blob.write_text("{}")
    (snap / "snapshots" / SHA).mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snap / "snapshots" / SHA), snap / "snapshots" / SHA / "config.json")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9"}
    code, doc, err = validate(repo, env)
    assert code == 0, err
    assert "local cache" in hub_check(doc)["message"]
    code, doc, _ = validate(hub_repo(tmp_path / "b", OTHER), env)
    assert code == 1 and "not in the local cache" in hub_check(doc)["message"]
