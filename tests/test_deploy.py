"""`releasectl deploy render`: the served config follows the channel, from the pins, byte for byte.

The Kubernetes objects are validated against the real Kubernetes JSON schemas shipped by PyPI
`kubernetes-validate`. The `vllm`-marked test starts the rendered `serve.sh` for real (vLLM's CPU
build on 127.0.0.1), asks `/v1/models`, rolls production back, re-renders, restarts, and sees the
previous release served.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import git


def render(cli, repo: Path, *args: str):
    result = cli("deploy", "render", *args, "--format", "json", cwd=repo)
    assert result.code == 0, result.output
    return result.json()


def test_render_is_byte_identical_and_follows_the_pins(cli, example_repo):
    first = render(cli, example_repo, "--target", "vllm", "--target", "kubernetes")
    out = example_repo / "deploy" / "rendered" / "production"
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert sorted(files) == ["kubernetes/llm-production.yaml", "vllm/serve.json", "vllm/serve.sh"]
    assert first["release"] == "v1.2" and len(first["changed"]) == 3
    again = render(cli, example_repo, "--target", "vllm", "--target", "kubernetes")
    assert again["changed"] == []  # same pins in, the same bytes: nothing rewritten
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files

    serve = json.loads(files["vllm/serve.json"])
    argv = serve["argv"]
    assert argv[argv.index("--seed") + 1] == "1234" and argv[argv.index("--dtype") + 1] == "float32"
    assert argv[argv.index("--max-model-len") + 1] == "2048" and "--no-enable-prefix-caching" in argv
    assert serve["manifest_digest"] == first["manifest_digest"] and "--enable-lora" not in argv
    script = files["vllm/serve.sh"].decode()
    assert script.startswith("#!/bin/sh\n") and "releasectl deploy snapshot" in script  # a GGUF pin
    assert os.access(out / "vllm" / "serve.sh", os.X_OK)


def test_a_release_with_an_adapter_renders_lora_modules(cli, example_repo):
    promoted = cli("promote", "v1.3", "--to", "production", "--force", "--reason", "test", cwd=example_repo)
    assert promoted.code == 0, promoted.output
    doc = render(cli, example_repo, "--target", "vllm", "--stdout")
    argv = json.loads(doc["files"]["vllm/serve.json"])["argv"]
    assert argv[argv.index("--lora-modules") + 1] == "lora_math_v1=$ROOT/adapters/lora_math_v1"
    assert argv[argv.index("--max-lora-rank") + 1] == "8"  # rank 4, bucketed up to vLLM's allowed set
    assert '--lora-modules lora_math_v1="$ROOT"/adapters/lora_math_v1' in doc["files"]["vllm/serve.sh"]


def test_kubernetes_objects_validate_against_the_real_schemas(cli, example_repo):
    import kubernetes_validate

    doc = render(cli, example_repo, "--target", "kubernetes", "--stdout", "--namespace", "llm")
    text = doc["files"]["kubernetes/llm-production.yaml"]
    objects = list(yaml.safe_load_all(text))
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    container = objects[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.32.0"  # the vLLM version the release pins
    assert "--model" in container["args"] and "&id" not in text
    assert objects[0]["metadata"]["annotations"]["releasectl/manifest-digest"] == doc["manifest_digest"]


def test_an_empty_channel_or_unknown_target_is_bad_input(cli, example_repo):
    empty = cli("deploy", "render", "--channel", "nightly", cwd=example_repo)
    assert empty.code == 2 and "holds no release" in empty.stderr
    wrong = cli("deploy", "render", "--target", "helm", cwd=example_repo)
    assert wrong.code == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_list_models(repo: Path, timeout: float = 420.0) -> dict:
    """Start the rendered serve.sh on 127.0.0.1, wait for /v1/models, stop it; bounded in time."""
    port = free_port()
    env = {
        **os.environ,
        "VLLM_HOST": "127.0.0.1",
        "VLLM_PORT": str(port),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "PYTHON": os.environ.get("PYTHON", "python"),
    }
    script = repo / "deploy" / "rendered" / "production" / "vllm" / "serve.sh"
    proc = subprocess.Popen(
        ["sh", str(script)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"vllm serve exited {proc.returncode}: {proc.stderr.read()[-3000:]!r}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()
            except httpx.HTTPError:
                time.sleep(1)
        raise AssertionError("vllm serve did not answer /v1/models in time")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_serve_the_rendered_release_then_roll_back_and_serve_the_previous_one(cli, example_repo):
    promoted = cli("promote", "v1.3", "--to", "production", "--force", "--reason", "lora", cwd=example_repo)
    assert promoted.code == 0, promoted.output
    render(cli, example_repo, "--target", "vllm")
    served = {m["id"] for m in serve_and_list_models(example_repo)["data"]}
    assert served == {"SmolLM2-135M-Instruct", "lora_math_v1"}  # v1.3: the base model and its adapter

    rolled = cli("rollback", "--channel", "production", "--reason", "test rollback", cwd=example_repo)
    assert rolled.code == 0, rolled.output
    doc = render(cli, example_repo, "--target", "vllm")
    assert doc["release"] == "v1.2" and doc["changed"]
    served = {m["id"] for m in serve_and_list_models(example_repo)["data"]}
    assert served == {"SmolLM2-135M-Instruct"}  # v1.2 pins no adapter
    assert "rollback(production)" in git(example_repo, "log", "-1", "--format=%s")


def test_rollback_re_renders_the_served_config_in_the_same_commit(cli, example_repo):
    render(cli, example_repo, "--target", "vllm", "--target", "kubernetes")
    git(example_repo, "add", "deploy")
    git(example_repo, "commit", "-q", "-m", "render production")
    result = cli(
        "rollback",
        "--reason",
        "p95 spike",
        "--render",
        "vllm",
        "--render",
        "kubernetes",
        "--format",
        "json",
        cwd=example_repo,
    )
    assert result.code == 0, result.output
    doc = result.json()
    assert doc["to"] == "v1.1" and len(doc["rendered"]) == 3
    changed = git(example_repo, "show", "--name-only", "--format=", "HEAD").split()
    assert "deploy/rendered/production/vllm/serve.json" in changed and "releases/history.jsonl" in changed
    serve = json.loads((example_repo / "deploy/rendered/production/vllm/serve.json").read_text())
    assert serve["release"] == "v1.1" and serve["manifest"] == "releases/v1.1.yaml"
    assert git(example_repo, "status", "--porcelain").strip() == ""  # nothing left uncommitted


def test_rollback_re_renders_the_argo_rollout_to_the_previous_release(cli, example_repo):
    import yaml

    result = cli(
        "rollback", "--reason", "p95 spike", "--render", "argo", "--format", "json", cwd=example_repo
    )
    assert result.code == 0, result.output
    path = example_repo / "deploy/rendered/production/argo/llm-production.yaml"
    assert result.json()["rendered"] == ["deploy/rendered/production/argo/llm-production.yaml"]
    docs = list(yaml.safe_load_all(path.read_text()))
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    assert rollout["spec"]["template"]["metadata"]["labels"]["releasectl/release"] == "v1.1"
    assert (
        "deploy/rendered/production/argo/llm-production.yaml"
        in git(example_repo, "show", "--name-only", "--format=", "HEAD").split()
    )


def test_a_move_whose_release_cannot_be_rendered_is_refused_before_anything_changes(cli, example_repo):
    m = example_repo / "releases" / "v1.1.yaml"
    import re

    m.write_text(re.sub(r"  engine_versions:\n    vllm: .*\n", "", m.read_text()))
    git(example_repo, "commit", "-q", "-am", "v1.1 pins no vllm")
    before = (example_repo / "releases" / "history.jsonl").read_bytes()
    result = cli("rollback", "--reason", "x", "--render", "kubernetes", cwd=example_repo)
    assert result.code == 2 and "pins no vLLM version" in result.stderr
    assert (example_repo / "releases" / "history.jsonl").read_bytes() == before


def test_an_unwritable_out_directory_is_bad_input(cli, example_repo, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli("deploy", "render", "--out", str(tmp_path / "file"), cwd=example_repo)
    assert result.code == 2 and "cannot write the rendered config" in result.stderr
