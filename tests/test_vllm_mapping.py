"""The vLLM engine's mapping from the manifest, as pure functions (no vLLM needed).

The real engine runs on vLLM's CPU build in tests/test_replay_vllm.py (marked `vllm`) and on a
CUDA runner in `test_vllm_replay_is_deterministic_on_gpu` below (marked `gpu`).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from manifest_factory import BASE, SHA40, write_manifest

from releasectl.errors import EnvironmentFailure
from releasectl.manifest.loader import load_manifest
from releasectl.replay.engines import vllm as v
from releasectl.replay.engines.base import Adapter


@pytest.fixture
def manifest(tmp_path):
    text = (
        BASE.replace("engine: hf", "engine: vllm")
        .replace("device: cpu", "device: NVIDIA H100 80GB HBM3")
        .replace("dtype: float32", "dtype: bfloat16")
    )
    text = text.replace("max_model_len: 2048", "max_model_len: 4096\n  tensor_parallel_size: 2")
    return load_manifest(write_manifest(tmp_path, text)).manifest


def test_llm_kwargs_map_every_pinned_field(manifest, tmp_path):
    specs = v.lora_specs([Adapter("lora_math_v1", tmp_path / "a"), Adapter("lora_safety_v2", tmp_path / "b")])
    kw = v.llm_kwargs(manifest, tmp_path / "model", tmp_path / "tok", specs, [4, 16])
    assert kw["model"] == str(tmp_path / "model")  # the local snapshot, not the repo id
    assert kw["tokenizer"] == str(tmp_path / "tok")
    assert kw["revision"] == SHA40 and kw["tokenizer_revision"] == SHA40
    assert kw["dtype"] == "bfloat16"
    assert kw["tensor_parallel_size"] == 2
    assert kw["max_model_len"] == 4096
    assert kw["seed"] == 1234
    assert kw["enable_prefix_caching"] is False
    assert kw["enable_lora"] is True and kw["max_loras"] == 2 and kw["max_lora_rank"] == 16
    assert kw["enforce_eager"] is False  # GPUs run the compiled graph, the production configuration
    assert kw["disable_log_stats"] is False  # per-request timestamps for per-case latency


def test_cpu_runs_eager_in_float32(manifest, tmp_path):
    kw = v.llm_kwargs(manifest, tmp_path, tmp_path, [], [], device_class="cpu")
    assert kw["enforce_eager"] is True  # torch.compile costs ~2.5 min per start on the CPU build
    assert "enable_lora" not in kw


def test_determinism_settings_depend_on_the_platform():
    # Batch invariance swaps in Triton kernels, which the CPU build cannot run.
    assert v.determinism_env("cuda")["VLLM_BATCH_INVARIANT"] == "1"
    assert v.determinism_env("cpu")["VLLM_BATCH_INVARIANT"] == "0"
    assert all(
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" for env in map(v.determinism_env, ("cpu", "cuda"))
    )


def test_lora_requests_have_unique_ids_and_rank_buckets(tmp_path):
    specs = v.lora_specs([Adapter(n, tmp_path / n) for n in "abc"])
    assert [s.int_id for s in specs] == [1, 2, 3]
    assert [v.lora_rank_bucket(r) for r in (1, 2, 4, 8, 9, 300, 512)] == [1, 8, 8, 8, 16, 320, 512]
    with pytest.raises(EnvironmentFailure, match="max_lora_rank"):
        v.lora_rank_bucket(1024)


def test_sampling_params_are_explicit(manifest):
    kw = v.sampling_kwargs(manifest.sampling)
    assert kw == {
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": -1,
        "max_tokens": 64,
        "seed": 1234,
        "repetition_penalty": 1.0,
        "stop": None,
    }


def test_data_parallel_is_refused_offline(tmp_path):
    text = BASE.replace("max_model_len: 2048", "max_model_len: 2048\n  data_parallel_size: 2")
    m = load_manifest(write_manifest(tmp_path, text)).manifest
    with pytest.raises(EnvironmentFailure, match="refuses data parallelism") as err:
        v.llm_kwargs(m, tmp_path, tmp_path, [], [])
    assert "--shard" in (err.value.hint or "")


def test_determinism_env_is_set_before_vllm_is_imported():
    code = (
        "import os, sys\n"
        "from releasectl.replay.engines import vllm as v\n"
        "assert 'vllm' not in sys.modules\n"
        "v.set_determinism_env('cuda')\n"
        "assert os.environ['VLLM_BATCH_INVARIANT'] == '1' and os.environ['VLLM_ENABLE_V1_MULTIPROCESSING'] == '0'\n"
        "sys.modules['vllm'] = object()  # stand-in: vllm already imported\n"
        "v.set_determinism_env('cuda')  # same settings: a second replay in one process is fine\n"
        "del os.environ['VLLM_BATCH_INVARIANT']\n"
        "try:\n    v.set_determinism_env('cuda')\nexcept Exception as e:\n    print(type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "EnvironmentFailure"


def _has_vllm_and_cuda() -> bool:
    # Without importing vllm: it must first see the determinism settings replay gives it.
    import importlib.util

    import torch

    return importlib.util.find_spec("vllm") is not None and bool(torch.cuda.is_available())


@pytest.mark.gpu
@pytest.mark.skipif(not _has_vllm_and_cuda(), reason="needs vLLM and a CUDA GPU (self-hosted GPU runner)")
def test_vllm_replay_is_deterministic_on_gpu(tmp_path, repo_root):
    # Runs the real engine on this GPU, in a fresh process (vLLM reads its settings at import).
    # The example releases pin the CPU build and device 'cpu'; a GPU runner's releases pin their
    # own GPU and vLLM version, so here the drift is accepted and recorded.
    args = [
        "releasectl",
        "replay",
        str(repo_root / "releases" / "v1.3.yaml"),
        "--engine",
        "vllm",
        "--allow-device-drift",
        "--allow-engine-drift",
        "--limit",
        "2",
        "--check-determinism",
        "--out",
        str(tmp_path / "run"),
        "--format",
        "json",
    ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=repo_root)
    assert out.returncode == 0, out.stderr[-4000:]
    import json

    doc = json.loads(out.stdout)
    assert doc["determinism"]["identical"] is True
    assert doc["runtime"]["device_class"] == "cuda" and doc["runtime"]["gpu_name"]
    assert doc["runtime"]["vllm"] and doc["runtime"]["cuda"]
