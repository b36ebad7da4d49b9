"""hf:// artifacts resolve through huggingface_hub.snapshot_download(revision=<sha>).

The Hub cannot be reached here, so the test lays out a local cache exactly as the Hub client
does (`models--org--name/{refs,blobs,snapshots/<sha>}`) and runs offline in a subprocess
(HF_HUB_OFFLINE is read when huggingface_hub is imported).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"
CODE = (
    "import json, sys\n"
    "from releasectl.manifest.artifacts import hf_snapshot\n"
    "from releasectl.errors import ReleasectlError\n"
    "try:\n"
    "    print(json.dumps({'path': str(hf_snapshot('hf://org/model', sys.argv[1]))}))\n"
    "except ReleasectlError as e:\n"
    "    print(json.dumps({'error': type(e).__name__, 'message': e.message}))\n"
)


def make_cache(root: Path) -> Path:
    repo = root / "models--org--model"
    content = b'{"model_type": "llama"}'
    blob = repo / "blobs" / hashlib.sha256(content).hexdigest()  # LFS-style: the blob is named by its sha256
    blob.parent.mkdir(parents=True)
    blob.write_bytes(content)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    snap = repo / "snapshots" / SHA
    snap.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snap), snap / "config.json")
    return snap


def resolve(cache: Path, revision: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", CODE, revision], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_pinned_revision_resolves_to_that_snapshot(tmp_path):
    snap = make_cache(tmp_path)
    doc = resolve(tmp_path, SHA)
    assert Path(doc["path"]).resolve() == snap.resolve()
    assert json.loads((Path(doc["path"]) / "config.json").read_text()) == {"model_type": "llama"}


def test_missing_revision_offline_is_an_environment_failure(tmp_path):
    make_cache(tmp_path)
    doc = resolve(tmp_path, "f" * 40)
    assert doc["error"] == "EnvironmentFailure" and "not in the local Hugging Face cache" in doc["message"]
