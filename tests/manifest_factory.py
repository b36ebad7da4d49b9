"""A minimal valid manifest as text, for tests that edit one line and check the error."""

from __future__ import annotations

from pathlib import Path

SHA40 = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "a" * 64
MD5DIR = "b" * 32 + ".dir"

BASE = f"""release: v1.3
parent: v1.2
description: test release
model:
  name: SmolLM2-135M-Instruct
  uri: hf://HuggingFaceTB/SmolLM2-135M-Instruct
  revision: {SHA40}
tokenizer:
  uri: hf://HuggingFaceTB/SmolLM2-135M-Instruct
  revision: {SHA40}
adapters: []
input:
  template:
    path: prompts/assistant_v2.j2
    sha256: {SHA256}
sampling:
  temperature: 0.0
  top_p: 1.0
  max_tokens: 64
  seed: 1234
verifiers:
  answer_tag: "1.0"
tools:
  search_api:
    version: "3.2.1"
data:
  suite:
    path: suites/core
    md5: {MD5DIR}
  training_snapshot:
    path: data/train
    md5: {MD5DIR}
code:
  repo_sha: {SHA40}
training:
  method: none
  config:
    path: training/base_instruct.yaml
    sha256: {SHA256}
runtime:
  engine: hf
  engine_version: "5.23.0"
  dtype: float32
  device: cpu
  max_model_len: 2048
policy:
  promotion:
    staging: checklists/policies/dev_to_staging.rules
    production: checklists/policies/staging_to_production.rules
  protected_slices: [headache_redflags]
  alerts:
    - name: p95-latency
      family: performance
      rule: "latency_p95_ms.point <= 5000"
      rollback: true
infrastructure:
  gpu_type: NVIDIA L4
  gpu_memory_gb: 24
  gpu_hourly_usd: 0.8
  gpus_allocated: 2
  target_qps: 20
  avg_prompt_tokens: 180
  avg_output_tokens: 80
  p95_latency_ms_target: 900
  tokens_per_second_per_gpu: 2400
  params_b: 0.135
  precision: q4_1
  budget_per_1k_tokens_usd: 0.0005
"""


def write_manifest(root: Path, text: str = BASE, name: str = "v1.3") -> Path:
    """Write `text` as releases/<name>.yaml under `root` and return its path."""
    path = root / "releases" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line number of the first line containing `needle`."""
    for i, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in manifest")
