"""The vLLM engine's mapping from the manifest, tested without a GPU (pure functions).

vLLM itself cannot run here (no CUDA); the real engine runs in `test_vllm_gpu`, marked `gpu`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from manifest_factory import BASE, SHA40, write_manifest

from releasectl.errors import BadInput
from releasectl.manifest.loader import load_manifest
from releasectl.replay.engines import vllm as v


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
    specs = v.lora_specs([("lora_math_v1", tmp_path / "a"), ("lora_safety_v2", tmp_path / "b")])
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


def test_lora_requests_have_unique_ids_and_rank_buckets(tmp_path):
    specs = v.lora_specs([("a", tmp_path / "a"), ("b", tmp_path / "b"), ("c", tmp_path / "c")])
    assert [s.int_id for s in specs] == [1, 2, 3]
    assert [v.lora_rank_bucket(r) for r in (1, 2, 4, 8, 9, 300, 512)] == [1, 8, 8, 8, 16, 320, 512]
    with pytest.raises(BadInput):
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
    with pytest.raises(BadInput, match="refuses data parallelism") as err:
        v.llm_kwargs(m, tmp_path, tmp_path, [], [])
    assert "--shard" in (err.value.hint or "")


def test_determinism_env_is_set_before_vllm_is_imported():
    code = (
        "import os, sys\n"
        "from releasectl.replay.engines import vllm as v\n"
        "assert 'vllm' not in sys.modules\n"
        "v.set_determinism_env()\n"
        "assert os.environ['VLLM_BATCH_INVARIANT'] == '1' and os.environ['VLLM_ENABLE_V1_MULTIPROCESSING'] == '0'\n"
        "sys.modules['vllm'] = object()  # stand-in: vllm imported too early\n"
        "del os.environ['VLLM_BATCH_INVARIANT']\n"
        "try:\n    v.set_determinism_env()\nexcept Exception as e:\n    print(type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "EnvironmentFailure"


def _has_vllm_and_cuda() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.gpu
@pytest.mark.skipif(not _has_vllm_and_cuda(), reason="needs vLLM and a CUDA GPU (self-hosted GPU runner)")
def test_vllm_replay_is_deterministic_on_gpu(tmp_path, cli, repo_root):
    # Runs the real engine: the example manifest with the vllm engine on this GPU.
    os.environ.update(v.DETERMINISM_ENV)
    args = [
        "replay",
        str(repo_root / "releases" / "v1.2.yaml"),
        "--engine",
        "vllm",
        "--allow-device-drift",
        "--limit",
        "2",
        "--check-determinism",
        "--out",
        str(tmp_path / "run"),
        "--format",
        "json",
    ]
    result = cli(*args)
    assert result.code == 0, result.output
    assert result.json()["determinism"]["identical"] is True
